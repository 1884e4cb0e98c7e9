import numpy as np
import pytest

from wamdiff_ros.scenes import future_available, scene_at
from wamdiff_ros.types import Agents, EgoState, Lane, LogFrame, TrafficLight


def _log(n=50, episode="ep", agent_until=None):
    frames = []
    for i in range(n):
        t = 0.1 * i
        seen = agent_until is None or t <= agent_until + 1e-9
        agents = (
            Agents([7], [0], [[4.5, 2.0]], [[[20 + 15 * t, 3.5, 0]]], [[[15, 0]]], [[True]])
            if seen
            else Agents.empty(1)
        )
        frames.append(
            LogFrame(
                round(t * 1e9),
                episode,
                EgoState([10 * t, 0, 0], [10, 0], stamp_ns=round(t * 1e9)),
                agents,
                [0],
                traffic_lights={0: int(TrafficLight.GREEN if t < 2 else TrafficLight.RED)},
            )
        )
    return frames


LANES = [Lane(0, [[0, 0], [300, 0]], 3.5)]


def test_human_trajectory_and_agent_futures_come_from_later_frames():
    s = scene_at(_log(), LANES, 0)
    np.testing.assert_allclose(s.human_trajectory[:, 0], 10 * s.spec.times)
    assert s.agents.poses.shape == (1, 41, 3)
    np.testing.assert_allclose(s.agents.poses[0, ::10, 0], [20, 35, 50, 65, 80])
    assert s.agents.valid.all()
    lights = s.traffic_lights[0]
    assert lights[0] == TrafficLight.GREEN and lights[-1] == TrafficLight.RED


def test_agent_that_leaves_the_log_is_invalid_afterwards():
    s = scene_at(_log(agent_until=1.0), LANES, 0)
    assert s.agents.valid[0, :11].all() and not s.agents.valid[0, 12:].any()


def test_future_must_cover_the_horizon_within_the_episode():
    frames = _log(30) + _log(30, episode="other")
    assert not future_available(frames, 0, scene_at(_log(), LANES, 0).spec)
    with pytest.raises(ValueError, match="need 4.00 s"):
        scene_at(frames, LANES, 0)
