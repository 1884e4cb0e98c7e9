"""Route centre line and PDM-Closed-style IDM proposals (the reference NAVSIM normalises progress by).

PDM-Closed follows a centre line (and copies offset sideways) with an Intelligent Driver Model speed
profile at several target-speed fractions, each one braking for the nearest agent or red light in its
path. :func:`idm_proposals` builds those profiles for any map-frame centre lines and returns them as
base_link trajectories on the scene's grid, vectorised over all proposals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wamdiff_ros.geometry import interpolate_polyline, project_to_polyline, relative, wrap_angle
from wamdiff_ros.types import SceneTruth, TrafficLight

IDM_ACCEL_MAX = 1.5  # [m/s²] PDM-Closed IDM
IDM_DECEL_MAX = 3.0  # [m/s²]
IDM_HEADWAY = 1.5  # [s]
IDM_MIN_GAP = 1.0  # [m]
IDM_EXPONENT = 4.0
PDM_LATERAL_OFFSETS = (-1.0, 0.0, 1.0)  # [m] PDM-Closed centre-line offsets
SPEED_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
_ROUTE_FALLBACK_LENGTH = 300.0  # [m]


def _append(path: list[np.ndarray], pts: np.ndarray) -> None:
    if path and np.linalg.norm(path[-1][-1] - pts[0]) < 1e-6:
        pts = pts[1:]
    if len(pts):
        path.append(pts)


def route_centerline(scene: SceneTruth) -> np.ndarray:
    """(N, 2) map-frame centre line of the route lanes, concatenated in route order.

    Without route lanes, the lane nearest the ego and its first successors (up to 300 m) stand in.
    """
    parts: list[np.ndarray] = []
    if scene.route_lane_ids:
        for lane_id in scene.route_lane_ids:
            _append(parts, scene.lane(lane_id).centerline)
    else:
        if not scene.lanes:
            raise ValueError("route_centerline: scene has neither route lanes nor lanes")
        xy = scene.ego.pose[:2]
        dist = [abs(project_to_polyline(xy, lane.centerline)[1]) for lane in scene.lanes]
        lane = scene.lanes[int(np.argmin(dist))]
        length, seen = 0.0, set()
        while lane is not None and lane.lane_id not in seen and length < _ROUTE_FALLBACK_LENGTH:
            seen.add(lane.lane_id)
            _append(parts, lane.centerline)
            length += float(np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1).sum())
            nxt = [s for s in lane.successors if any(ln.lane_id == s for ln in scene.lanes)]
            lane = scene.lane(nxt[0]) if nxt else None
    line = np.concatenate(parts)
    if len(line) < 2:
        raise ValueError("route_centerline: route has fewer than 2 distinct points")
    return line


def offset_polyline(line: np.ndarray, offset: float) -> np.ndarray:
    """Copy of a polyline (N, 2) shifted sideways by ``offset`` metres (positive: left)."""
    line = np.asarray(line, np.float64)
    if offset == 0:
        return line.copy()
    d = np.gradient(line, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return line + offset * n


def _speed_limit_near(scene: SceneTruth, point: np.ndarray) -> float:
    best, limit = np.inf, 15.0
    for lane in scene.lanes:
        _, d, _ = project_to_polyline(point, lane.centerline)
        if abs(d) < best:
            best, limit = abs(float(d)), lane.speed_limit
    return limit


def idm_proposals(
    scene: SceneTruth,
    centerlines: Sequence[np.ndarray],
    speed_fractions: Sequence[float] = SPEED_FRACTIONS,
    *,
    speed_limits: Sequence[float] | None = None,
    accel_max: float = IDM_ACCEL_MAX,
    decel_max: float = IDM_DECEL_MAX,
    headway: float = IDM_HEADWAY,
    min_gap: float = IDM_MIN_GAP,
    dt: float = 0.1,
) -> np.ndarray:
    """IDM proposals (P, T, 3) in base_link on ``scene.spec``'s grid, P = len(centerlines)·len(speed_fractions),
    ordered centre line major.

    Each proposal drives along a map-frame centre line (N_i, 2) from the ego's projection onto it, with
    target speed = fraction × speed limit (``speed_limits`` per centre line, else the nearest lane's).
    The lead is the nearest obstacle ahead whose box overlaps the ego's corridor along the line: agents
    (current state from ``scene.agents`` at index 0, moving at constant velocity) and red lights (the
    start of a lit lane that the line runs through, while RED).
    """
    if len(centerlines) == 0 or len(speed_fractions) == 0:
        raise ValueError("idm_proposals: need at least one centre line and one speed fraction")
    lines = [np.asarray(c, np.float64).reshape(-1, 2) for c in centerlines]
    for i, c in enumerate(lines):
        if len(c) < 2:
            raise ValueError(f"idm_proposals: centerlines[{i}] needs >= 2 points, got {len(c)}")
    if speed_limits is not None and len(speed_limits) != len(lines):
        raise ValueError(f"idm_proposals: speed_limits needs {len(lines)} values, got {len(speed_limits)}")
    fr = np.asarray(speed_fractions, np.float64)
    spec = scene.spec
    n = round(spec.horizon / dt) + 1
    times = dt * np.arange(n)
    ego_pose = scene.ego.pose
    ego_l, ego_w = scene.ego_size
    front = scene.rear_axle_to_center + ego_l / 2

    ag = scene.agents
    a_ok = ag.valid[:, 0] if ag.num_steps else np.zeros(len(ag), bool)
    a_pos = ag.poses[a_ok, 0]
    a_vel = ag.velocities[a_ok, 0]
    a_size = ag.sizes[a_ok]
    a_xy = a_pos[:, None, :2] + a_vel[:, None] * times[None, :, None]
    light_ids = [k for k in scene.traffic_lights if any(lane.lane_id == k for lane in scene.lanes)]

    c_n = len(lines)
    s0 = np.empty(c_n)
    obs_rear = []
    obs_center = []
    obs_in = []
    obs_v = []
    limits = np.empty(c_n)
    for ci, c in enumerate(lines):
        s0[ci] = project_to_polyline(ego_pose[:2], c)[0]
        if speed_limits is None:
            limits[ci] = _speed_limit_near(scene, interpolate_polyline(c, s0[ci])[:2])
        else:
            limits[ci] = speed_limits[ci]
        s, d, hd = project_to_polyline(a_xy, c)
        rel = a_pos[:, None, 2] - hd
        hl = 0.5 * (np.abs(a_size[:, 0:1] * np.cos(rel)) + np.abs(a_size[:, 1:2] * np.sin(rel)))
        hw = 0.5 * (np.abs(a_size[:, 0:1] * np.sin(rel)) + np.abs(a_size[:, 1:2] * np.cos(rel)))
        v_along = a_vel[:, None, 0] * np.cos(hd) + a_vel[:, None, 1] * np.sin(hd)
        rear, center, inside, vel = [s - hl], [s], [np.abs(d) < hw + ego_w / 2], [v_along]
        for lid in light_ids:
            start = scene.lane(lid).centerline
            ls, ld, lh = project_to_polyline(start[0], c)
            lane_h = np.arctan2(*(start[1] - start[0])[::-1])
            aligned = abs(float(ld)) < 1.0 and abs(float(wrap_angle(lane_h - lh))) < np.pi / 4
            states = scene.traffic_lights[lid]
            idx = np.clip(np.round(times / ag.dt).astype(int), 0, len(states) - 1)
            red = (states[idx] == TrafficLight.RED) & aligned
            rear.append(np.full((1, n), float(ls)))
            center.append(np.full((1, n), float(ls)))
            inside.append(red[None])
            vel.append(np.zeros((1, n)))
        rear.append(np.full((1, n), np.inf))
        center.append(np.full((1, n), np.inf))
        inside.append(np.zeros((1, n), bool))
        vel.append(np.zeros((1, n)))
        obs_rear.append(np.concatenate(rear))
        obs_center.append(np.concatenate(center))
        obs_in.append(np.concatenate(inside))
        obs_v.append(np.concatenate(vel))

    cidx = np.repeat(np.arange(c_n), len(fr))
    v_des = np.maximum(np.tile(fr, c_n) * limits[cidx], 0.1)
    o_rear = np.stack(obs_rear)[cidx]
    o_center = np.stack(obs_center)[cidx]
    o_in = np.stack(obs_in)[cidx]
    o_v = np.stack(obs_v)[cidx]
    p = len(cidx)
    s = s0[cidx].copy()
    v = np.full(p, max(scene.ego.speed, 0.0))
    s_hist = np.empty((p, n))
    s_hist[:, 0] = s
    root_ab = 2 * np.sqrt(accel_max * decel_max)
    for t in range(n - 1):
        ahead = o_in[:, :, t] & (o_center[:, :, t] > s[:, None] + scene.rear_axle_to_center)
        gap = np.where(ahead, o_rear[:, :, t] - (s[:, None] + front), np.inf)
        k = np.argmin(gap, axis=1)
        g = gap[np.arange(p), k]
        v_lead = o_v[np.arange(p), k, t]
        free = 1 - (v / v_des) ** IDM_EXPONENT
        s_star = min_gap + np.maximum(0.0, v * headway + v * (v - v_lead) / root_ab)
        inter = np.where(np.isfinite(g), (s_star / np.maximum(g, 1e-2)) ** 2, 0.0)
        acc = np.clip(accel_max * (free - inter), -decel_max, accel_max)
        v_next = np.maximum(v + acc * dt, 0.0)
        s = s + 0.5 * (v + v_next) * dt
        v = v_next
        s_hist[:, t + 1] = s

    idx = np.clip(np.round(spec.times / dt).astype(int), 0, n - 1)
    out = np.empty((p, spec.num_poses, 3))
    for ci, c in enumerate(lines):
        sel = cidx == ci
        out[sel] = interpolate_polyline(c, s_hist[sel][:, idx])
    return relative(ego_pose, out)
