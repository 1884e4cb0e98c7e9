"""Oriented-box overlap (separating axes) and NAVSIM's at-fault collision and TTC rules, vectorised.

NAVSIM walks time steps and, per proposal, remembers tracks it has already touched without fault; a
track's first contact therefore decides its fate. Here all (candidate, time, agent) contacts are found
at once (bounding-circle broad phase, then SAT), the first contact of every (candidate, agent) pair is
selected, and only those are classified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.scoring import metrics as M
from wamdiff_ros.types import AgentType


def obb_overlap(c1, yaw1, hl1, hw1, c2, yaw2, hl2, hw2) -> np.ndarray:
    """True where oriented boxes (centre (..., 2), yaw, half-length, half-width) overlap or touch."""
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    dx, dy = c2[..., 0] - c1[..., 0], c2[..., 1] - c1[..., 1]
    co1, si1 = np.cos(yaw1), np.sin(yaw1)
    co2, si2 = np.cos(yaw2), np.sin(yaw2)
    c = np.abs(np.cos(np.asarray(yaw2) - yaw1))
    s = np.abs(np.sin(np.asarray(yaw2) - yaw1))
    sep = np.abs(dx * co1 + dy * si1) > hl1 + hl2 * c + hw2 * s
    sep |= np.abs(-dx * si1 + dy * co1) > hw1 + hl2 * s + hw2 * c
    sep |= np.abs(dx * co2 + dy * si2) > hl2 + hl1 * c + hw1 * s
    sep |= np.abs(-dx * si2 + dy * co2) > hw2 + hl1 * s + hw1 * c
    return ~sep


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
    (rear axle inside an intersection lane)."""

    rear: np.ndarray
    center: np.ndarray
    speed: np.ndarray
    half_length: float
    half_width: float
    multi_or_offroad: np.ndarray
    in_intersection: np.ndarray


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


def _contacts(
    ego_c: np.ndarray, ego_yaw: np.ndarray, ego_hl: float, ego_hw: float, ag: AgentTrack, t_agent: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g, t, a) index arrays where ego boxes (G, T', 2) touch agents at agent times ``t_agent`` (T',).

    Broad phase in two steps: (time, agent) pairs inside the bounding box of all candidates' centres at
    that time, then per-candidate bounding circles; SAT only on the survivors.
    """
    empty = np.zeros(0, np.int64)
    if not len(ag.half_length):
        return empty, empty, empty
    reach_a = np.hypot(ag.half_length, ag.half_width)
    reach_e = np.hypot(ego_hl, ego_hw)
    a_c = ag.center[:, t_agent]
    lo = ego_c.min(0) - reach_e
    hi = ego_c.max(0) + reach_e
    inside = (a_c + reach_a[:, None, None] >= lo[None]).all(-1) & (a_c - reach_a[:, None, None] <= hi[None]).all(-1)
    a_i, t_i = np.nonzero(inside & ag.valid[:, t_agent])
    if not len(a_i):
        return empty, empty, empty
    dx = ego_c[:, t_i, 0] - a_c[a_i, t_i, 0]
    dy = ego_c[:, t_i, 1] - a_c[a_i, t_i, 1]
    g, p = np.nonzero(dx * dx + dy * dy <= (reach_e + reach_a[a_i]) ** 2)
    t, a = t_i[p], a_i[p]
    if not len(g):
        return g, t, a
    hit = obb_overlap(
        ego_c[g, t],
        ego_yaw[g, t],
        ego_hl,
        ego_hw,
        a_c[a, t],
        ag.yaw[a, t_agent[t]],
        ag.half_length[a],
        ag.half_width[a],
    )
    return g[hit], t[hit], a[hit]


def first_seen_speed(ag: AgentTrack) -> np.ndarray:
    """(A,) speed [m/s] of each agent at its first valid step (0 for an agent never valid)."""
    first = ag.valid.argmax(1)
    speed = ag.speed[np.arange(len(first)), first]
    return np.where(ag.valid.any(1), speed, 0.0)


def _first_per_pair(g: np.ndarray, a: np.ndarray, order: np.ndarray, n_agents: int) -> np.ndarray:
    """Indices of the earliest (by ``order``) event of every (g, a) pair."""
    key = g * n_agents + a
    idx = np.lexsort((order, key))
    _, first = np.unique(key[idx], return_index=True)
    return idx[first]


def no_at_fault_collision(ego: EgoTrack, ag: AgentTrack) -> tuple[np.ndarray, np.ndarray]:
    """NC (G,) in {0, 0.5, 1} and the first at-fault collision step (G,) (inf where none).

    A track's first contact is at-fault when the ego is moving and the track is stopped (or static) when
    it first appears in the horizon (NAVSIM classifies with the track's first observed state), or
    the ego's front bumper hits it, or the contact is lateral while the ego straddles lanes or is off
    the drivable area; never when the track is behind the ego (rear-ended). Later contacts with a
    track whose first contact was not at fault are ignored, as in NAVSIM.
    """
    n_g, n_t = ego.speed.shape
    nc = np.ones(n_g)
    t_hit = np.full(n_g, np.inf)
    t_all = np.arange(n_t)
    g, t, a = _contacts(ego.center, ego.rear[..., 2], ego.half_length, ego.half_width, ag, t_all)
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
    np.minimum.at(nc, g[fault], value[fault])
    np.minimum.at(t_hit, g[fault], t[fault].astype(np.float64))
    return nc, t_hit


def time_to_collision(ego: EgoTrack, ag: AgentTrack, steps=M.TTC_PROJECTION_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """TTC (G,) in {0, 1} and the first violating step (G,) (inf where none).

    The ego box at step t is moved ahead at its speed for 0, 0.3, 0.6 and 0.9 s and tested against the
    agents at t + k; only steps whose projections stay inside the horizon are checked, and not while the
    ego is (nearly) stopped. A track's first projected contact fails TTC when the track is ahead of
    the ego (within 30°), or when the ego straddles lanes, is off-road or in an intersection and the track
    is not behind it.
    """
    n_g, n_t = ego.speed.shape
    kmax = max(steps)
    n_eval = n_t - kmax
    ttc = np.ones(n_g)
    t_fail = np.full(n_g, np.inf)
    if n_eval <= 0:
        return ttc, t_fail
    yaw = ego.rear[:, :n_eval, 2]
    heading = np.stack([np.cos(yaw), np.sin(yaw)], -1)
    moving = ego.speed[:, :n_eval] >= M.TTC_STOPPED_SPEED
    evs = []
    for ki, k in enumerate(steps):
        c = ego.center[:, :n_eval] + heading * (np.abs(ego.speed[:, :n_eval]) * k * 0.1)[..., None]
        g, t, a = _contacts(c, yaw, ego.half_length, ego.half_width, ag, np.arange(n_eval) + k)
        keep = moving[g, t]
        evs.append((g[keep], t[keep], a[keep], np.full(keep.sum(), ki)))
    g, t, a, ki = (np.concatenate(x) for x in zip(*evs))
    if len(g) == 0:
        return ttc, t_fail
    f = _first_per_pair(g, a, t * len(steps) + ki, len(ag.half_length))
    g, t, a, ki = g[f], t[f], a[f], ki[f]
    ta = t + np.asarray(steps)[ki]
    ang = bearing_angle(ego.rear[g, t, :2], ego.rear[g, t, 2], ag.center[a, ta])
    ahead = ang < np.deg2rad(M.AHEAD_ANGLE_DEG)
    behind = ang > np.deg2rad(M.BEHIND_ANGLE_DEG)
    risky = ego.multi_or_offroad[g, t] | ego.in_intersection[g, t]
    fail = ahead | (risky & ~behind)
    ttc[g[fail]] = 0.0
    np.minimum.at(t_fail, g[fail], t[fail].astype(np.float64))
    return ttc, t_fail
