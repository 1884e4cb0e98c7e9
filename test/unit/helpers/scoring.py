"""Hand-built scoring scenes shared by the test_scoring_* files."""

from __future__ import annotations

import numpy as np

from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, SceneTruth, TrajectorySpec

SPEC = TrajectorySpec()
STEPS = 41
T = 0.1 * np.arange(STEPS)


def straight_lane(lane_id: int, y: float, x0: float = -50.0, x1: float = 300.0, width: float = 4.0, **kw) -> Lane:
    """Lane along +x (or −x when x0 > x1) at height y, points every 2 m."""
    n = int(abs(x1 - x0) / 2) + 1
    x = np.linspace(x0, x1, n)
    return Lane(lane_id, np.stack([x, np.full(n, y)], 1), width, **kw)


def straight(speed: float, y: float = 0.0, accel: float = 0.0) -> np.ndarray:
    """(8, 3) base_link trajectory straight ahead: x = v·t + a·t²/2 (held once stopped), lateral offset y."""
    t = SPEC.times if accel >= 0 else np.minimum(SPEC.times, speed / -accel)
    x = speed * t + 0.5 * accel * t**2
    return np.stack([x, np.full(len(t), y), np.zeros(len(t))], 1)


def agent(x, y, yaw=0.0, vx=0.0, vy=0.0, length=4.0, width=2.0, kind=AgentType.VEHICLE, valid=None):
    """One agent moving at constant velocity from (x, y) over the 4 s horizon (10 Hz)."""
    poses = np.stack([x + vx * T, y + vy * T, np.full(STEPS, yaw)], 1)
    vel = np.tile([vx, vy], (STEPS, 1))
    return {
        "pose": poses,
        "vel": vel,
        "size": (length, width),
        "type": int(kind),
        "valid": np.ones(STEPS, bool) if valid is None else valid,
    }


def agents_of(items) -> Agents:
    if not items:
        return Agents.empty(STEPS)
    return Agents(
        ids=np.arange(len(items)),
        types=[a["type"] for a in items],
        sizes=[a["size"] for a in items],
        poses=np.stack([a["pose"] for a in items]),
        velocities=np.stack([a["vel"] for a in items]),
        valid=np.stack([a["valid"] for a in items]),
    )


def scene(
    lanes,
    speed: float = 10.0,
    pose=(0.0, 0.0, 0.0),
    agents=(),
    route=None,
    human=None,
    lights=None,
    **kw,
) -> SceneTruth:
    """SceneTruth with the ego at ``pose`` moving at ``speed``; the human drives straight at that speed."""
    return SceneTruth(
        ego=EgoState(np.asarray(pose, float), velocity=[speed, 0.0]),
        lanes=list(lanes),
        route_lane_ids=[lanes[0].lane_id] if route is None else list(route),
        agents=agents_of(list(agents)),
        human_trajectory=straight(speed) if human is None else human,
        traffic_lights=lights or {},
        **kw,
    )
