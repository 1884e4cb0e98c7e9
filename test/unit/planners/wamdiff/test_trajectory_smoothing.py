"""Post-decoding smoothing of WAM-Diff waypoints: exact on constant-acceleration paths, removes bin
jitter, keeps the ego origin, is off by default, and is validated in the config."""

import numpy as np
import pytest
import torch

from wamdiff_ros.bench.model import synthetic_observations
from wamdiff_ros.config import ConfigError
from wamdiff_ros.geometry import smooth_path
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.config import DecodingConfig, tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.types import TrajectorySpec

T = TrajectorySpec().times


def test_exact_on_constant_acceleration_and_removes_jitter():
    xy = np.stack([10.0 * T + 0.5 * T**2, 0.3 * T**2], axis=1)
    np.testing.assert_allclose(smooth_path(xy, T, 2)[:, :2], xy, atol=1e-9)
    jitter = np.random.default_rng(0).uniform(-0.1, 0.1, xy.shape)  # up to half a 0.2 m bin
    out = smooth_path(xy + jitter, T, 2)
    assert np.abs(out[:, :2] - xy).max() < 0.1
    accel = np.diff(np.concatenate([[[0.0, 0.0]], out[:, :2]]), 2, axis=0) / 0.25
    raw = np.diff(np.concatenate([[[0.0, 0.0]], xy + jitter]), 2, axis=0) / 0.25
    assert np.ptp(accel[1:, 0]) < 1e-9 < np.ptp(raw[1:, 0])  # constant acceleration after the fit
    np.testing.assert_allclose(out[:, 2], np.arctan2(np.gradient(out[:, 1]), np.gradient(out[:, 0])), atol=0.05)
    with pytest.raises(ValueError, match="one time per waypoint"):
        smooth_path(xy, T[:4], 2)


def test_planner_applies_the_configured_degree():
    assert DecodingConfig().smooth_degree == 0
    with pytest.raises(ConfigError, match="smooth_degree"):
        DecodingConfig(smooth_degree=9)
    torch.manual_seed(0)
    net = WamDiffNet(tiny_config())
    obs = synthetic_observations(net.cfg.rig_obj, 1)[0]
    raw = WamDiffPlanner(net, mode="fast").plan(obs).trajectory.poses
    net.cfg.decoding.smooth_degree = 2
    smooth = WamDiffPlanner(net, mode="fast").plan(obs).trajectory.poses
    np.testing.assert_allclose(smooth, smooth_path(raw, net.cfg.spec.times, 2), atol=1e-9)
