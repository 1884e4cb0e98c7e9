"""Constant-velocity baseline: exact arcs, straight NAVSIM variant, checkpoint round trip."""

import json

import numpy as np
import pytest

from wamdiff_ros.planners.base import RigMismatchError, load_planner
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import Rig, load_rig
from wamdiff_ros.types import EgoState, Observation, TrajectorySpec


def obs(v=10.0, vy=0.0, w=0.0):
    return Observation(
        images={}, ego=EgoState(pose=[5.0, 3.0, 1.0], velocity=[v, vy], yaw_rate=w), stamp_ns=2_000_000_000
    )


def test_straight_line_at_current_speed():
    p = ConstantVelocityPlanner(load_rig(), TrajectorySpec(8, 0.5))
    res = p.plan(obs(v=10.0))
    np.testing.assert_allclose(res.trajectory.poses[:, 0], 10.0 * np.arange(1, 9) * 0.5)
    np.testing.assert_allclose(res.trajectory.poses[:, 1:], 0.0)
    assert res.trajectory.frame == "base_link" and res.trajectory.stamp_ns == 2_000_000_000
    assert res.mode == "fast" and res.candidates.shape == (1, 8, 3)


def test_constant_yaw_rate_gives_an_exact_circle():
    v, w = 10.0, 0.25
    res = ConstantVelocityPlanner(load_rig(), TrajectorySpec(8, 0.5)).plan(obs(v=v, w=w))
    radius = v / w
    xy = res.trajectory.poses[:, :2]
    np.testing.assert_allclose(np.hypot(xy[:, 0], xy[:, 1] - radius), radius, rtol=1e-12)
    np.testing.assert_allclose(res.trajectory.poses[:, 2], w * np.arange(1, 9) * 0.5)
    # arc length along the circle equals v·t
    np.testing.assert_allclose(radius * res.trajectory.poses[:, 2], v * np.arange(1, 9) * 0.5)


def test_navsim_variant_goes_straight_along_the_heading_at_the_current_speed():
    p = ConstantVelocityPlanner(load_rig(), use_yaw_rate=False)
    res = p.plan(obs(v=3.0, vy=4.0, w=0.5))  # speed 5 m/s, as NAVSIM's ConstantVelocityAgent takes it
    np.testing.assert_allclose(res.trajectory.poses[:, 0], 5.0 * np.arange(1, 9) * 0.5)
    np.testing.assert_allclose(res.trajectory.poses[:, 1:], 0.0)


def test_checkpoint_round_trip_registry_and_errors(tmp_path):
    p = ConstantVelocityPlanner(load_rig(), TrajectorySpec(6, 0.25), use_yaw_rate=False)
    folder = p.save(tmp_path / "cv")
    q = load_planner(folder, rig=load_rig())
    assert isinstance(q, ConstantVelocityPlanner) and q.family == "constant_velocity"
    assert q.spec == TrajectorySpec(6, 0.25) and not q.use_yaw_rate and q.rig.mismatch(p.rig) is None
    other = Rig("one", (load_rig().cameras[0],))
    with pytest.raises(RigMismatchError, match="camera names"):
        load_planner(folder, rig=other)
    with pytest.raises(ValueError, match="unknown options"):
        load_planner(folder, mode="slow")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_planner(folder)
    doc = {"family": "constant_velocity", "format_version": 1, "config": {}}
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="rig"):
        load_planner(folder)
