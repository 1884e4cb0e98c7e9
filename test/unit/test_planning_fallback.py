"""HeldPlan: the simulator bridges' last plan, continued at a later pose, a comfortable stop once it runs out."""

from __future__ import annotations

import numpy as np
import pytest

from wamdiff_ros.planning.fallback import HeldPlan
from wamdiff_ros.stamps import seconds_to_ns
from wamdiff_ros.types import EgoState, Trajectory, TrajectorySpec

SPEC = TrajectorySpec(8, 0.5)
T0 = seconds_to_ns(100.0)


def _straight_plan(speed: float) -> Trajectory:
    poses = np.stack([speed * SPEC.times, np.zeros(8), np.zeros(8)], axis=1)
    return Trajectory(poses, SPEC, stamp_ns=T0)


def test_a_held_plan_continues_from_a_later_pose_then_stops():
    origin = EgoState(pose=np.array([10.0, 5.0, np.pi / 2]), velocity=np.array([4.0, 0.0]), stamp_ns=T0)
    held = HeldPlan(stop_decel=3.0)
    held.hold(_straight_plan(4.0), origin)
    # 1 s later the car is 4 m further along the plan (north in the map): the rest of the plan lies ahead.
    later = EgoState(pose=np.array([10.0, 9.0, np.pi / 2]), velocity=np.array([4.0, 0.0]), stamp_ns=T0 + 10**9)
    traj = held.at(later.stamp_ns, later)
    assert traj.stamp_ns == later.stamp_ns and traj.frame == "base_link"
    assert traj.poses[0] == pytest.approx([4.0 * traj.spec.dt, 0.0, 0.0], abs=1e-6)
    assert np.allclose(traj.poses[:, 1:], 0.0, atol=1e-6)
    # Past the plan's 4 s horizon, and after clear(), it is a comfortable stop: monotone, ending at rest.
    stop = held.at(T0 + seconds_to_ns(4.5), later)
    assert np.all(np.diff(stop.poses[:, 0]) >= -1e-9)
    assert stop.poses[-1, 0] == pytest.approx(stop.poses[-2, 0], abs=1e-6)
    held.clear()
    assert np.allclose(held.at(later.stamp_ns, later).poses, stop.poses)
