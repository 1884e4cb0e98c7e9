"""Oriented-box overlap (separating axes) and NAVSIM's at-fault collision and TTC rules, vectorised.

NAVSIM walks time steps and, per proposal, remembers tracks it has already touched without fault; a
track's first contact therefore decides its fate. Here all (candidate, time, agent) contacts are found
at once (bounding circles bucketed per scene, :mod:`wamdiff_ros.scoring.agent_grid`, then separating
axes, compiled in :mod:`wamdiff_ros.scoring.kernels`), the first contact of every (candidate,
agent) pair is selected, and only those are classified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.scoring import metrics as M
from wamdiff_ros.scoring.agent_grid import AgentGrid, build_agent_grid
from wamdiff_ros.scoring.kernels import box_contacts, minimum_at
from wamdiff_ros.types import AgentType


def obb_overlap(c1, yaw1, hl1, hw1, c2, yaw2, hl2, hw2) -> np.ndarray:
    """True where oriented boxes (centre (..., 2), yaw, half-length, half-width) overlap or touch."""
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    dx, dy = c2[..., 0] - c1[..., 0], c2[..., 1] - c1[..., 1]
    rel = np.asarray(yaw2) - yaw1
    box1 = (np.cos(yaw1), np.sin(yaw1), hl1, hw1)
    return ~_separated(dx, dy, box1, (np.cos(yaw2), np.sin(yaw2), hl2, hw2), np.abs(np.cos(rel)), np.abs(np.sin(rel)))


def _separated(dx, dy, box1, box2, c, s) -> np.ndarray:
    """Separating-axis test of two boxes ``(cos, sin, half-length, half-width)`` whose centres differ by
    (dx, dy) (second minus first); ``c``, ``s``: |cos|, |sin| of the heading difference."""
    co1, si1, hl1, hw1 = box1
    co2, si2, hl2, hw2 = box2
    sep = np.abs(dx * co1 + dy * si1) > hl1 + hl2 * c + hw2 * s
    sep |= np.abs(-dx * si1 + dy * co1) > hw1 + hl2 * s + hw2 * c
    sep |= np.abs(dx * co2 + dy * si2) > hl2 + hl1 * c + hw1 * s
    sep |= np.abs(-dx * si2 + dy * co2) > hw2 + hl1 * s + hw1 * c
    return sep


def segment_obb_overlap(mid, direction_yaw, half_len, c2, yaw2, hl2, hw2) -> np.ndarray:
    """True where the segment (midpoint (..., 2), direction, half length) touches the oriented box."""
    mid, c2 = np.asarray(mid, np.float64), np.asarray(c2, np.float64)
    dx, dy = c2[..., 0] - mid[..., 0], c2[..., 1] - mid[..., 1]
    ex, ey = np.cos(direction_yaw), np.sin(direction_yaw)
    co2, si2 = np.cos(yaw2), np.sin(yaw2)
    c = np.abs(ex * co2 + ey * si2)
    s = np.abs(-ex * si2 + ey * co2)
    sep = np.abs(dx * co2 + dy * si2) > hl2 + half_len * c
    sep |= np.abs(-dx * si2 + dy * co2) > hw2 + half_len * s
    sep |= np.abs(-dx * ey + dy * ex) > hl2 * s + hw2 * c
    return ~sep


def bearing_angle(origin_xy, origin_yaw, target_xy) -> np.ndarray:
    """Unsigned angle [rad] between the heading and the direction to ``target`` (0 when coincident)."""
    d = np.asarray(target_xy, np.float64) - origin_xy
    norm = np.hypot(d[..., 0], d[..., 1])
    cosang = (d[..., 0] * np.cos(origin_yaw) + d[..., 1] * np.sin(origin_yaw)) / np.maximum(norm, 1e-12)
    return np.where(norm > 1e-9, np.arccos(np.clip(cosang, -1.0, 1.0)), 0.0)


@dataclass
class EgoTrack:
    """Simulated ego over time. rear: (G, T, 3) rear-axle poses; center: (G, T, 2) box centres;
    speed: (G, T) [m/s]; half_length, half_width [m]; multi_or_offroad: (G, T) bool (in several lanes
    without one holding the whole box, or a corner off the drivable area); in_intersection: (G, T) bool
    (rear axle inside an intersection lane); cos_yaw, sin_yaw: (G, T) of the rear-axle heading
    (computed when not given). ``center_x``, ``center_y``, ``speed``, ``cos_yaw`` and ``sin_yaw`` are
    kept as contiguous float64 (G, T) arrays, the layout the compiled contact test reads."""

    rear: np.ndarray
    center: np.ndarray
    speed: np.ndarray
    half_length: float
    half_width: float
    multi_or_offroad: np.ndarray
    in_intersection: np.ndarray
    cos_yaw: np.ndarray | None = None
    sin_yaw: np.ndarray | None = None

    def __post_init__(self):
        c = np.ascontiguousarray
        yaw = self.rear[..., 2]
        self.center_x, self.center_y = c(self.center[..., 0], np.float64), c(self.center[..., 1], np.float64)
        self.speed = c(self.speed, np.float64)
        self.cos_yaw = c(np.cos(yaw) if self.cos_yaw is None else self.cos_yaw, np.float64)
        self.sin_yaw = c(np.sin(yaw) if self.sin_yaw is None else self.sin_yaw, np.float64)


@dataclass
class AgentTrack:
    """Other agents on the simulation grid. center: (A, T, 2); yaw: (A, T); speed: (A, T); valid: (A, T);
    half_length, half_width: (A,); types: (A,) :class:`AgentType`."""

    center: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    valid: np.ndarray
    half_length: np.ndarray
    half_width: np.ndarray
    types: np.ndarray
    _grids: dict[float, AgentGrid] = field(default_factory=dict, repr=False, compare=False)

    def grid(self, ego_reach: float) -> AgentGrid:
        """The broad-phase grid for an ego of bounding radius ``ego_reach`` [m] (built once, then kept)."""
        if ego_reach not in self._grids:
            reach = np.hypot(self.half_length, self.half_width)
            self._grids[ego_reach] = build_agent_grid(self.center, self.yaw, self.valid, reach, ego_reach)
        return self._grids[ego_reach]


def _contacts(
    ego: EgoTrack,
    ag: AgentTrack,
    n_q: int,
    k: int = 0,
    query: np.ndarray | None = None,
    before: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g, t, a) index arrays where the ego box of candidate g at step t < ``n_q``, moved ahead along its
    heading by |speed|·k·SIM_DT, touches agent a at step t + k; among the boxes flagged in ``query``
    (G, n_q) (all by default) and, with ``before`` (G·A,), at steps t before ``before[g·A + a]``."""
    if not len(ag.half_length):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    grid = ag.grid(float(np.hypot(ego.half_length, ego.half_width)))
    c = np.ascontiguousarray
    return box_contacts(
        ego.center_x,
        ego.center_y,
        ego.cos_yaw,
        ego.sin_yaw,
        ego.speed,
        n_q,
        k,
        M.SIM_DT,
        np.zeros((0, 0), bool) if query is None else c(query, bool),
        np.zeros(0, np.int64) if before is None else c(before, np.int64),
        float(ego.half_length),
        float(ego.half_width),
        c(grid.origin, np.float64),
        float(grid.size),
        grid.shape[1],
        grid.shape[2],
        grid.start,
        grid.item,
        grid.x,
        grid.y,
        grid.cos,
        grid.sin,
        grid.radius2,
        grid.shape[0],
        c(ag.half_length, np.float64),
        c(ag.half_width, np.float64),
    )


def current_contacts(ego: EgoTrack, ag: AgentTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g, t, a) index arrays, in no particular order, where the ego box of candidate g touches agent a at
    step t."""
    return _contacts(ego, ag, ego.speed.shape[1])


def first_seen_speed(ag: AgentTrack) -> np.ndarray:
    """(A,) speed [m/s] of each agent at its first valid step (0 for an agent never valid)."""
    first = ag.valid.argmax(1)
    speed = ag.speed[np.arange(len(first)), first]
    return np.where(ag.valid.any(1), speed, 0.0)


def _first_per_pair(g: np.ndarray, a: np.ndarray, order: np.ndarray, n_agents: int) -> np.ndarray:
    """Indices, in no particular order, of the earliest event of every (g, a) pair (``order`` is
    unique within a pair)."""
    key = g * n_agents + a
    if not len(key):
        return key
    first = np.full(int(key.max()) + 1, np.iinfo(np.int64).max)
    minimum_at(first, key, order)
    return np.flatnonzero(order == first[key])


def no_at_fault_collision(ego: EgoTrack, ag: AgentTrack, now=None) -> tuple[np.ndarray, np.ndarray]:
    """NC (G,) in {0, 0.5, 1} and the first at-fault collision step (G,) (inf where none).

    A track's first contact is at-fault when the ego is moving and the track is stopped (or static) when
    it first appears in the horizon (NAVSIM classifies with the track's first observed state), or
    the ego's front bumper hits it, or the contact is lateral while the ego straddles lanes or is off
    the drivable area; never when the track is behind the ego (rear-ended). Later contacts with a
    track whose first contact was not at fault are ignored, as in NAVSIM. ``now``: the
    :func:`current_contacts`, if at hand.
    """
    n_g = ego.speed.shape[0]
    nc = np.ones(n_g)
    t_hit = np.full(n_g, np.inf)
    g, t, a = current_contacts(ego, ag) if now is None else now
    if len(g) == 0:
        return nc, t_hit
    f = _first_per_pair(g, a, t, len(ag.half_length))
    g, t, a = g[f], t[f], a[f]
    yaw = ego.rear[g, t, 2]
    ego_stopped = ego.speed[g, t] <= M.COLLISION_STOPPED_SPEED
    track_stopped = (ag.types[a] == AgentType.STATIC) | (first_seen_speed(ag)[a] <= M.COLLISION_STOPPED_SPEED)
    behind = bearing_angle(ego.rear[g, t, :2], yaw, ag.center[a, t]) > np.deg2rad(M.BEHIND_ANGLE_DEG)
    bumper_mid = ego.center[g, t] + ego.half_length * np.stack([np.cos(yaw), np.sin(yaw)], -1)
    front = segment_obb_overlap(
        bumper_mid, yaw + np.pi / 2, ego.half_width, ag.center[a, t], ag.yaw[a, t], ag.half_length[a], ag.half_width[a]
    )
    lateral_fault = ego.multi_or_offroad[g, t]
    fault = ~ego_stopped & (track_stopped | (~behind & (front | lateral_fault)))
    value = np.where(ag.types[a] == AgentType.STATIC, M.NC_STATIC, M.NC_AGENT)
    minimum_at(nc, g[fault], value[fault])
    minimum_at(t_hit, g[fault], t[fault].astype(np.float64))
    return nc, t_hit


def time_to_collision(
    ego: EgoTrack, ag: AgentTrack, steps=M.TTC_PROJECTION_STEPS, now=None
) -> tuple[np.ndarray, np.ndarray]:
    """TTC (G,) in {0, 1} and the first violating step (G,) (inf where none).

    The ego box at step t is moved ahead at its speed for 0, 0.3, 0.6 and 0.9 s and tested against the
    agents at t + k; only steps whose projections stay inside the horizon are checked, and not while the
    ego is (nearly) stopped. A track's first projected contact fails TTC when the track is ahead of
    the ego (within 30°), or when the ego straddles lanes, is off-road or in an intersection and the track
    is not behind it. ``now``: the :func:`current_contacts` (the projection by 0 s), if at hand.
    Projections run in order, and contacts later than a pair's first contact so far are not tested.
    """
    n_g, n_t = ego.speed.shape
    kmax = max(steps)
    n_eval = n_t - kmax
    ttc = np.ones(n_g)
    t_fail = np.full(n_g, np.inf)
    if n_eval <= 0:
        return ttc, t_fail
    moving = ego.speed[:, :n_eval] >= M.TTC_STOPPED_SPEED
    n_a, n_k = len(ag.half_length), len(steps)
    first = np.full(n_g * n_a, np.iinfo(np.int64).max // 2)
    evs = []
    for ki, k in enumerate(steps):
        if k == 0 and now is not None:
            g, t, a = now
            keep = t < n_eval
            g, t, a = g[keep], t[keep], a[keep]
            keep = moving[g, t]
            g, t, a = g[keep], t[keep], a[keep]
        else:
            before = (first - ki + n_k - 1) // n_k
            g, t, a = _contacts(ego, ag, n_eval, k, moving, before)
        minimum_at(first, g * n_a + a, t * n_k + ki)
        evs.append((g, t, a, np.full(len(g), ki)))
    g, t, a, ki = (np.concatenate(x) for x in zip(*evs))
    if len(g) == 0:
        return ttc, t_fail
    f = np.flatnonzero(t * n_k + ki == first[g * n_a + a])
    g, t, a, ki = g[f], t[f], a[f], ki[f]
    ta = t + np.asarray(steps)[ki]
    ang = bearing_angle(ego.rear[g, t, :2], ego.rear[g, t, 2], ag.center[a, ta])
    ahead = ang < np.deg2rad(M.AHEAD_ANGLE_DEG)
    behind = ang > np.deg2rad(M.BEHIND_ANGLE_DEG)
    risky = ego.multi_or_offroad[g, t] | ego.in_intersection[g, t]
    fail = ahead | (risky & ~behind)
    ttc[g[fail]] = 0.0
    minimum_at(t_fail, g[fail], t[fail].astype(np.float64))
    return ttc, t_fail
