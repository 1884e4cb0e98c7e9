"""Build scoring scenes from logs: the frame at index ``k`` plus the logged future of later frames.

This is NAVSIM's pseudo-simulation input: the ego's logged future becomes the "human" trajectory and
the other agents' logged futures are replayed non-reactively.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wamdiff_ros.geometry import relative, resample
from wamdiff_ros.stamps import NS_PER_S, ns_to_seconds
from wamdiff_ros.types import Agents, Lane, LogFrame, SceneTruth, TrafficLight, TrajectorySpec

AGENT_DT = 0.1
"""Time step of agent futures in a scene [s] (NAVSIM scores at 10 Hz)."""


def future_available(frames: Sequence[LogFrame], k: int, spec: TrajectorySpec) -> bool:
    """True when the log covers ``spec.horizon`` seconds after frame ``k`` within one episode."""
    after = list(_same_episode_after(frames, k))
    return bool(after) and ns_to_seconds(after[-1].stamp_ns - frames[k].stamp_ns) >= spec.horizon - 1e-6


def _same_episode_after(frames: Sequence[LogFrame], k: int):
    for f in frames[k + 1 :]:
        if f.episode != frames[k].episode:
            return
        yield f


def scene_at(
    frames: Sequence[LogFrame],
    lanes: list[Lane],
    k: int,
    spec: TrajectorySpec | None = None,
    previous_plan: np.ndarray | None = None,
    previous_plan_offset: float = 0.0,
) -> SceneTruth:
    """SceneTruth of frame ``k`` with futures interpolated from frames ``k..`` of the same episode.

    Agent futures are sampled every :data:`AGENT_DT` s over ``spec.horizon``; an agent is valid at a
    time only if it was logged on both sides of it. Raises ValueError if the log ends (or the episode
    changes) before the horizon.
    """
    spec = spec or TrajectorySpec()
    now = frames[k]
    window = [now, *_same_episode_after(frames, k)]
    stamps = np.array([f.stamp_ns - now.stamp_ns for f in window]) / NS_PER_S
    if stamps[-1] < spec.horizon - 1e-6:
        raise ValueError(
            f"scene_at: frame {k} of episode {now.episode!r} has {stamps[-1]:.2f} s of future, "
            f"need {spec.horizon:.2f} s"
        )
    end = int(np.searchsorted(stamps, spec.horizon - 1e-6)) + 1
    window, stamps = window[:end], stamps[:end]

    ego_map = np.stack([f.ego.pose for f in window])
    human = relative(now.ego.pose, resample(ego_map, stamps, spec.times))

    steps = round(spec.horizon / AGENT_DT) + 1
    times = AGENT_DT * np.arange(steps)
    ids = now.agents.ids
    a = len(ids)
    poses = np.zeros((a, steps, 3))
    vel = np.zeros((a, steps, 2))
    valid = np.zeros((a, steps), bool)
    for i, agent_id in enumerate(ids):
        t_seen, p_seen, v_seen = [], [], []
        for f, t in zip(window, stamps):
            j = np.flatnonzero(f.agents.ids == agent_id)
            if len(j):
                t_seen.append(t)
                p_seen.append(f.agents.poses[j[0], 0])
                v_seen.append(f.agents.velocities[j[0], 0])
        t_seen = np.asarray(t_seen)
        if len(t_seen) == 1:
            poses[i, 0], vel[i, 0], valid[i, 0] = p_seen[0], v_seen[0], True
            continue
        pv = np.concatenate([np.asarray(p_seen), np.asarray(v_seen)], axis=1)
        interp = resample(pv[:, [0, 1, 2]], t_seen, times)
        poses[i] = interp
        for c in range(2):
            vel[i, :, c] = np.interp(times, t_seen, pv[:, 3 + c])
        valid[i] = (times >= t_seen[0] - 1e-6) & (times <= t_seen[-1] + 1e-6)
    agents = Agents(ids, now.agents.types, now.agents.sizes, poses, vel, valid, dt=AGENT_DT)

    lights = {}
    for lane_id in now.traffic_lights:
        states = np.full(steps, int(TrafficLight.UNKNOWN), np.int64)
        for f, t in zip(window, stamps):
            if lane_id in f.traffic_lights:
                states[times >= t - 1e-6] = f.traffic_lights[lane_id]
        lights[lane_id] = states

    return SceneTruth(
        ego=now.ego,
        lanes=lanes,
        route_lane_ids=list(now.route_lane_ids),
        agents=agents,
        human_trajectory=human,
        spec=spec,
        traffic_lights=lights,
        scenario=now.scenario,
        previous_plan=previous_plan,
        previous_plan_offset=previous_plan_offset,
    )
