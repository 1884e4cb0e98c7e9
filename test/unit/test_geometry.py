import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wamdiff_ros import geometry as g

finite = st.floats(-100, 100, allow_nan=False)
poses = arrays(np.float64, (5, 3), elements=finite)


@given(poses, poses)
def test_compose_inverse_and_relative_round_trip(a, b):
    np.testing.assert_allclose(g.compose(a, g.inverse(a)), 0.0, atol=1e-9)
    np.testing.assert_allclose(g.wrap_angle(g.relative(a, g.compose(a, b)) - b)[..., 2], 0.0, atol=1e-9)
    np.testing.assert_allclose(g.relative(a, g.compose(a, b))[..., :2], b[..., :2], atol=1e-7)


@given(arrays(np.float64, (3,), elements=finite), arrays(np.float64, (7, 2), elements=finite))
def test_point_transforms_round_trip(origin, pts):
    np.testing.assert_allclose(g.to_global_points(origin, g.to_local_points(origin, pts)), pts, atol=1e-8)


def test_to_local_points_rotates_into_ego_frame():
    # Ego at (10, 0) facing +y: a point at (10, 5) is 5 m straight ahead.
    np.testing.assert_allclose(g.to_local_points([10, 0, np.pi / 2], [[10, 5]]), [[5, 0]], atol=1e-12)


def test_wrap_angle_range():
    a = g.wrap_angle(np.linspace(-20, 20, 101))
    assert (a >= -np.pi).all() and (a < np.pi).all()


def test_wrap_angle_of_a_float_is_a_float_equal_to_the_array_result():
    angles = np.concatenate([np.linspace(-20, 20, 101), [-np.pi, np.pi, 3 * np.pi, 0.0, -1e-17]])
    scalars = [g.wrap_angle(float(a)) for a in angles]
    assert all(type(v) is float for v in scalars)
    np.testing.assert_array_equal(scalars, g.wrap_angle(angles))


def test_resample_interpolates_across_the_yaw_seam():
    out = g.resample(np.array([[0, 0, 3.1], [1, 0, -3.1]]), np.array([0.0, 1.0]), np.array([0.5]))
    # Midway between 3.1 and -3.1 through ±π, not through 0.
    assert abs(abs(out[0, 2]) - np.pi) < 1e-6
    np.testing.assert_allclose(out[0, :2], [0.5, 0])


def test_resample_clamps_outside_and_rejects_unsorted_times():
    p = np.array([[0.0, 0, 0], [2, 0, 0]])
    np.testing.assert_allclose(g.resample(p, np.array([0.0, 1.0]), np.array([-1.0, 2.0]))[:, 0], [0, 2])
    try:
        g.resample(p, np.array([1.0, 0.0]), np.array([0.5]))
    except ValueError as e:
        assert "increasing" in str(e)
    else:
        raise AssertionError("unsorted times accepted")


def test_project_to_polyline_signs_and_extension():
    line = np.array([[0.0, 0], [10, 0], [10, 10]])
    s, d, h = g.project_to_polyline(np.array([[5, 1], [11, 5], [-2, -1]]), line)
    np.testing.assert_allclose(s, [5, 15, -2])
    np.testing.assert_allclose(d, [1, -1, -1])  # left of travel is positive
    np.testing.assert_allclose(h, [0, np.pi / 2, 0])


def test_interpolate_polyline_is_inverse_of_projection():
    line = np.array([[0.0, 0], [10, 0], [10, 10]])
    poses = g.interpolate_polyline(line, np.array([0, 5, 12, 20]))
    np.testing.assert_allclose(poses[:, :2], [[0, 0], [5, 0], [10, 2], [10, 10]])
    s, d, _ = g.project_to_polyline(poses[:, :2], line)
    np.testing.assert_allclose(s, [0, 5, 12, 20], atol=1e-9)
    np.testing.assert_allclose(d, 0, atol=1e-9)


def test_curvature_of_a_circle():
    r, v, dt = 20.0, 10.0, 0.1
    t = np.arange(40) * dt
    th = v * t / r
    poses = np.stack([r * np.sin(th), r * (1 - np.cos(th)), th], -1)
    np.testing.assert_allclose(g.curvature(poses, dt)[2:-2], 1 / r, rtol=1e-3)


def test_box_corners_order_and_size():
    c = g.box_corners(np.array([1.0, 2.0, np.pi / 2]), 4.0, 2.0)
    np.testing.assert_allclose(c, [[0, 4], [0, 0], [2, 0], [2, 4]], atol=1e-12)
    many = g.box_corners(np.array([[1.0, 2.0, 0.3], [3.0, 4.0, 0.1]]), np.array([4.0, 4.5]), np.array([2.0, 1.8]))
    assert many.flags["C_CONTIGUOUS"], "OpenCV's fillPoly (the demo's bird's-eye view) needs contiguous corners"


def test_path_yaw_by_hand():
    straight = np.stack([np.arange(1, 9) * 2.0, np.zeros(8)], 1)
    np.testing.assert_allclose(g.path_yaw(straight), 0.0)
    diag = np.stack([np.arange(1, 9), np.arange(1, 9)], 1).astype(float)
    np.testing.assert_allclose(g.path_yaw(diag), np.pi / 4)
    np.testing.assert_allclose(g.path_yaw(np.zeros((8, 2))), 0.0)  # standing still: heading 0
    r, th = 20.0, np.linspace(0.1, 0.8, 8)
    arc = np.stack([r * np.sin(th), r * (1 - np.cos(th))], 1)
    np.testing.assert_allclose(g.path_yaw(arc)[1:-1], th[1:-1], atol=0.01)
    # a short chord (stopping half-way) keeps the previous heading; the last pose uses its incoming segment
    stop = np.array([[1.0, 1.0], [2.0, 2.0], [2.0, 2.0], [2.0, 2.0]])
    np.testing.assert_allclose(g.path_yaw(stop), [np.pi / 4, np.pi / 4, np.pi / 4, np.pi / 4])
    np.testing.assert_allclose(g.path_yaw(np.array([[1.0, 0.0], [1.0, 1.0]])), [np.pi / 4, np.pi / 2])


def test_path_yaw_and_smooth_path_are_vectorised():
    rng = np.random.default_rng(0)
    t = np.arange(1, 9) * 0.5
    paths = np.cumsum(rng.normal(0.0, 1.0, (6, 8, 2)) * rng.choice([0.01, 1.0], (6, 8, 1)), axis=1)
    paths[0] = 0.0
    np.testing.assert_allclose(
        g.path_yaw(paths.reshape(2, 3, 8, 2)), np.stack([g.path_yaw(q) for q in paths]).reshape(2, 3, 8)
    )
    batch = g.smooth_path(paths.reshape(2, 3, 8, 2), t, 2)
    np.testing.assert_allclose(batch.reshape(6, 8, 3), np.stack([g.smooth_path(q, t, 2) for q in paths]), atol=1e-9)


def test_wrap_near_keeps_in_range_values_and_wraps_the_rest_as_wrap_angle():
    angles = np.random.default_rng(0).uniform(-3 * np.pi, 3 * np.pi, 1000)
    out = np.empty_like(angles)
    got = g.wrap_near(angles, out=out)
    assert got is out
    np.testing.assert_allclose(g.wrap_angle(got - angles), 0.0, atol=1e-12)
    assert ((got >= -np.pi) & (got < np.pi)).all()
    inside = np.abs(angles) < 3.0
    np.testing.assert_array_equal(got[inside], angles[inside])  # unchanged, not rounded through +π−π
    assert g.wrap_near(np.array([np.pi]))[0] == -np.pi


def test_interpolation_matrix_is_resample_as_a_product():
    times, new = np.array([0.0, 0.5, 1.5, 2.0]), np.array([-1.0, 0.0, 0.2, 1.0, 1.9, 2.0, 3.0])
    poses = np.random.default_rng(1).normal(size=(5, 4, 3))
    want = g.resample(poses, times, new)
    w = g.interpolation_matrix(times, new)
    np.testing.assert_allclose(w.sum(1), 1.0)
    np.testing.assert_allclose(np.einsum("mt,gtc->gmc", w, poses)[..., :2], want[..., :2], atol=1e-12)
    with pytest.raises(ValueError, match="strictly increasing"):
        g.interpolation_matrix(np.array([0.0, 0.0]), new)
    with pytest.raises(ValueError, match="T >= 2"):
        g.interpolation_matrix(np.array([0.0]), new)
