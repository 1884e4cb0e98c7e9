"""Constant-twist motion: propagating an ego state agrees with the SE(2) exponential composed onto its pose."""

import numpy as np
import pytest

from wamdiff_ros.geometry import compose, wrap_angle
from wamdiff_ros.planning.motion import propagate, se2_exp, se2_log
from wamdiff_ros.types import EgoState


@pytest.mark.parametrize("yaw_rate", [0.0, 1e-8, -0.4, 2.5])
def test_propagate_is_the_exponential_composed_onto_the_pose(yaw_rate):
    rng = np.random.default_rng(7)
    for _ in range(50):
        pose = [*rng.normal(0, 50, 2), rng.uniform(-np.pi, np.pi)]
        ego = EgoState(
            pose=pose, velocity=rng.normal(0, 8, 2), acceleration=[0.5, -0.1], yaw_rate=yaw_rate, stamp_ns=3_000_000_000
        )
        dt_ns = round(rng.uniform(-0.3, 0.6) * 1e9)
        dt = dt_ns / 1e9
        out = propagate(ego, 3_000_000_000 + dt_ns)
        expected = compose(ego.pose, se2_exp(np.array([*ego.velocity, yaw_rate]) * dt))
        np.testing.assert_allclose(out.pose[:2], expected[:2], atol=1e-9)
        assert abs(wrap_angle(out.pose[2] - expected[2])) < 1e-9 and -np.pi <= out.pose[2] < np.pi
        assert out.stamp_ns == 3_000_000_000 + dt_ns and out.yaw_rate == yaw_rate
        np.testing.assert_array_equal(out.velocity, ego.velocity)
        np.testing.assert_array_equal(out.acceleration, ego.acceleration)


def test_log_inverts_exp():
    xi = np.array([[4.0, 0.3, 0.8], [2.0, -0.1, 1e-9], [-1.0, 0.0, -2.0]])
    np.testing.assert_allclose(se2_log(se2_exp(xi)), xi, atol=1e-9)
