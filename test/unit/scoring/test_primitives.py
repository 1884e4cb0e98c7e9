"""Building blocks of the scorer: kinematic bicycle, LQR tracker, Savitzky–Golay operators, box overlap."""

from __future__ import annotations

import numpy as np
import pytest

from wamdiff_ros.control.bicycle import BicycleParams, StateIndex, make_states, step
from wamdiff_ros.control.lqr import LQRParams, fit_speed_curvature, track, track_with_heading
from wamdiff_ros.geometry import wrap_angle
from wamdiff_ros.scoring.collision import bearing_angle, obb_overlap, segment_obb_overlap
from wamdiff_ros.scoring.comfort import savgol_operator


def test_bicycle_straight_and_lags():
    """From v = 10 m/s, a = 0, command a = 2 m/s², dt = 0.1, τ_a = 0.2: the lagged acceleration is
    0.1/0.3·2 = 2/3 m/s²; position advances with the old speed (x = 1 m) and speed becomes 10 + 0.1·2/3."""
    s = make_states(np.zeros(3), speed=10.0)
    n = step(s, 2.0, 0.0, 0.1)
    assert n[StateIndex.X] == pytest.approx(1.0)
    assert n[StateIndex.ACCEL] == pytest.approx(2 / 3)
    assert n[StateIndex.V] == pytest.approx(10 + 0.1 * 2 / 3)
    assert n[StateIndex.Y] == 0.0 and n[StateIndex.YAW] == 0.0


def test_bicycle_steering_lag_limits_and_batch():
    """Steering-angle target 0.2 rad with τ_δ = 0.05, dt = 0.1: δ = 0.1/0.15·0.2 = 0.1333 rad; the yaw rate
    is v·tan δ / L. With max_steer_rate 0.5 rad/s the step is limited to 0.05 rad. Works on (G, 9)."""
    p = BicycleParams()
    s = make_states(np.zeros((3, 3)), speed=np.array([5.0, 10.0, 0.0]))
    n = step(s, 0.0, dt=0.1, params=p, steer=0.2)
    np.testing.assert_allclose(n[:, StateIndex.STEER], 0.2 / 1.5)
    np.testing.assert_allclose(n[:, StateIndex.YAW_RATE], n[:, StateIndex.V] * np.tan(0.2 / 1.5) / p.wheelbase)
    lim = step(s, 0.0, dt=0.1, params=BicycleParams(max_steer_rate=0.5), steer=0.2)
    np.testing.assert_allclose(lim[:, StateIndex.STEER], 0.05)
    clip = step(
        make_states(np.zeros(3), speed=1.0), -50.0, 0.0, 0.1, BicycleParams(accel_min=-4.0, allow_reverse=False)
    )
    assert clip[StateIndex.ACCEL] == pytest.approx(0.1 / 0.3 * -4.0)
    stop = step(make_states(np.zeros(3), speed=0.01, accel=-5.0), -5.0, 0.0, 0.1, BicycleParams(allow_reverse=False))
    assert stop[StateIndex.V] == 0.0
    with pytest.raises(ValueError):
        step(s, 0.0, 0.0, 0.1, steer=0.1)
    with pytest.raises(ValueError):
        BicycleParams(wheelbase=0.0)


def _navsim_fit(poses: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """NAVSIM's two least-squares problems, in its (v0, accelerations) / (κ0, curvature rates) variables,
    solved with np.linalg.solve."""
    vs, ks = [], []
    for p in poses:
        d = np.diff(p, axis=0)
        m = len(d)
        col = np.zeros(2 * m)
        col[0::2], col[1::2] = np.cos(p[:-1, 2]), np.sin(p[:-1, 2])
        a = np.repeat(col[:, None] * dt**2, m, axis=1)
        a[:, 0] = col * dt
        a[np.repeat(np.triu(np.ones((m, m), bool), 1), 2, axis=0)] = 0.0
        band = np.zeros((m - 2, m - 1))
        band[:, 1:] += np.eye(m - 2)
        band[:, :-1] -= np.eye(m - 2)
        r = np.hstack([np.zeros((m - 2, 1)), band])
        x = np.linalg.solve(a.T @ a + 1e-4 * r.T @ r, a.T @ d[:, :2].reshape(-1))
        vel = x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)])
        a2 = np.tri(m)
        a2[:, 0] = vel * dt
        a2[1:, 1:] *= (vel * dt**2)[1:, None]
        q = 1e-2 * np.eye(m)
        q[0, 0] = 1e-10
        y = wrap_angle(d[:, 2])
        xk = np.linalg.solve(a2.T @ a2 + q, a2.T @ y)
        vs.append(vel)
        ks.append(xk[0] + np.concatenate([[0.0], np.cumsum(xk[1:] * dt)]))
    return np.array(vs), np.array(ks)


def test_profile_fit_matches_navsim_least_squares():
    rng = np.random.default_rng(3)
    t = np.arange(41) * 0.1
    v = rng.uniform(3, 15, (4, 1)) + rng.normal(size=(4, 1)) * t
    k = 0.03 * np.sin(t + rng.normal(size=(4, 1)))
    yaw = np.cumsum(v * k * 0.1, 1)
    poses = np.stack([np.cumsum(v * np.cos(yaw) * 0.1, 1), np.cumsum(v * np.sin(yaw) * 0.1, 1), yaw], -1)
    ours_v, ours_k = fit_speed_curvature(poses, 0.1)
    ref_v, ref_k = _navsim_fit(poses, 0.1)
    np.testing.assert_allclose(ours_v, ref_v, atol=1e-6)
    np.testing.assert_allclose(ours_k, ref_k, atol=1e-6)


def _explicit_lateral_command(v0, a, e0, psi0, delta0, kappa, dt=0.1, wheelbase=3.089):
    """NAVSIM's lateral LQR step with explicit 3×3 matrices (q = diag(1, 10, 0), r = 1)."""
    h = len(kappa)
    big_a, big_b, g = np.eye(3), np.zeros(3), np.zeros(3)
    for k in range(h):
        vk = v0 + a * dt * k
        mk = np.eye(3)
        mk[0, 1], mk[1, 2] = vk * dt, vk * dt / wheelbase
        big_a, big_b = mk @ big_a, mk @ big_b + np.array([0.0, 0.0, dt])
        g = mk @ g + np.array([0.0, -vk * kappa[k] * dt, 0.0])
    err = big_a @ np.array([e0, psi0, delta0]) + g
    err[1:] = wrap_angle(err[1:])
    q = np.diag([1.0, 10.0, 0.0])
    return -(big_b @ q @ err) / (big_b @ q @ big_b + 1.0)


def test_tracker_closed_form_equals_explicit_lqr_step():
    """One tracker step: the steering rate our closed form applies equals NAVSIM's explicit recursion."""
    t = np.arange(41) * 0.1
    kap = 0.02 * np.sin(t)
    yaw = np.cumsum(8.0 * kap * 0.1)
    ref = np.stack([np.cumsum(8.0 * np.cos(yaw) * 0.1), np.cumsum(8.0 * np.sin(yaw) * 0.1), yaw], -1)[None]
    init = make_states(ref[0, 0] + [0.0, 0.4, 0.05], speed=7.0, steer=0.01)
    out = track(ref, init, 0.1)
    v_prof, k_prof = fit_speed_curvature(ref, 0.1)
    a = -(1.0 * 10 * (7.0 - v_prof[0, 10])) / (10 + 1)
    c, s = np.cos(ref[0, 0, 2]), np.sin(ref[0, 0, 2])
    e0 = 0.4 * c - 0.0 * s
    u = _explicit_lateral_command(7.0, a, e0, 0.05, 0.01, k_prof[0, :10])
    assert out[0, 1, StateIndex.STEER_RATE] == pytest.approx((0.01 + 0.1 * u - 0.01) / (0.1 + 0.05))


def test_tracker_converges_to_reference():
    """Starting 0.5 m to the side and 2 m/s slow on a straight 10 m/s reference, the tracker ends within
    0.2 m laterally and 0.5 m/s of the reference speed."""
    t = np.arange(41) * 0.1
    ref = np.stack([10 * t, 0 * t, 0 * t], -1)[None]
    out = track(ref, make_states(np.array([0.0, 0.5, 0.0]), speed=8.0), 0.1)
    assert abs(out[0, -1, StateIndex.Y]) < 0.2
    assert abs(out[0, -1, StateIndex.V] - 10.0) < 0.5


def test_tracker_steps_the_bicycle_within_its_limits():
    """The compiled loop advances every state by the kinematic bicycle's Euler step (NAVSIM's order)
    and holds the limits of a constrained vehicle: steering rate, steering angle, acceleration command
    and no reversing, with a steering-angle weight in the lateral LQR."""
    bp = BicycleParams(max_steer=0.4, max_steer_rate=0.3, accel_min=-2.0, accel_max=1.0, allow_reverse=False)
    rng = np.random.default_rng(5)
    yaw = np.cumsum(rng.normal(0.0, 0.08, (32, 41)), 1)
    speed = rng.uniform(0.0, 12.0, (32, 1)) * np.linspace(1.0, rng.uniform(-1.0, 2.0, 32), 41, axis=1)
    ref = np.stack([np.cumsum(speed * np.cos(yaw) * 0.1, 1), np.cumsum(speed * np.sin(yaw) * 0.1, 1), yaw], -1)
    init = make_states(ref[0, 0], speed=6.0)
    s = track(ref, init, 0.1, LQRParams(q_lateral=(1.0, 10.0, 0.5)), bp)
    now, nxt = s[:, :-1], s[:, 1:]
    dist = 0.1 * now[..., StateIndex.V]
    np.testing.assert_allclose(nxt[..., StateIndex.X], now[..., StateIndex.X] + dist * np.cos(now[..., StateIndex.YAW]))
    np.testing.assert_allclose(nxt[..., StateIndex.Y], now[..., StateIndex.Y] + dist * np.sin(now[..., StateIndex.YAW]))
    turned = now[..., StateIndex.YAW] + dist * np.tan(now[..., StateIndex.STEER]) / bp.wheelbase
    np.testing.assert_allclose(nxt[..., StateIndex.YAW], wrap_angle(turned), atol=1e-12)
    v = np.maximum(now[..., StateIndex.V] + 0.1 * nxt[..., StateIndex.ACCEL], 0.0)
    np.testing.assert_allclose(nxt[..., StateIndex.V], v)
    np.testing.assert_allclose(
        nxt[..., StateIndex.STEER],
        np.clip(now[..., StateIndex.STEER] + 0.1 * nxt[..., StateIndex.STEER_RATE], -0.4, 0.4),
    )
    omega = nxt[..., StateIndex.V] * np.tan(nxt[..., StateIndex.STEER]) / bp.wheelbase
    np.testing.assert_allclose(nxt[..., StateIndex.YAW_RATE], omega)
    assert np.abs(nxt[..., StateIndex.STEER_RATE]).max() <= 0.3
    assert np.abs(s[..., StateIndex.STEER]).max() <= 0.4 + 1e-12
    assert (s[..., StateIndex.V] >= 0).all() and s[..., StateIndex.V].min() == 0.0
    assert nxt[..., StateIndex.ACCEL].min() >= -2.0 and nxt[..., StateIndex.ACCEL].max() <= 1.0
    assert np.abs(nxt[..., StateIndex.STEER_RATE]).max() == pytest.approx(0.3)


def test_tracker_hands_back_the_cos_and_sin_of_every_heading():
    """The headings' cos and sin that the tracker computes on its way are those of the states it returns."""
    rng = np.random.default_rng(3)
    t = np.arange(41) * 0.1
    yaw = np.cumsum(rng.normal(0.0, 0.05, (6, 41)), 1) + 3.0  # near ±π, so the heading wraps
    speed = rng.uniform(0.0, 15.0, (6, 1))
    ref = np.stack([np.cumsum(speed * np.cos(yaw) * 0.1, 1), np.cumsum(speed * np.sin(yaw) * 0.1, 1), yaw], -1)
    init = make_states(ref[0, 0], speed=5.0)
    states, cos_yaw, sin_yaw = track_with_heading(ref, init, 0.1)
    np.testing.assert_array_equal(states, track(ref, init, 0.1))
    np.testing.assert_array_equal(cos_yaw, np.cos(states[..., StateIndex.YAW]))
    np.testing.assert_array_equal(sin_yaw, np.sin(states[..., StateIndex.YAW]))
    assert len(t) == states.shape[1]


@pytest.mark.parametrize(("window", "order", "deriv"), [(5, 2, 1), (5, 3, 2), (15, 2, 1), (41, 2, 0), (7, 2, 0)])
def test_savgol_is_exact_on_polynomials(window, order, deriv):
    """A Savitzky–Golay filter of order p reproduces polynomials of degree ≤ p and their derivatives
    exactly (odd windows, so every output is evaluated at its own sample)."""
    x = np.arange(41) * 0.1
    coeffs = np.array([0.3, -1.2, 0.7, 0.25])[: order + 1]
    y = np.polyval(coeffs[::-1], x)
    expected = np.polyval(np.polyder(coeffs[::-1], deriv), x) if deriv else y
    k = savgol_operator(41, window, order, deriv, 0.1)
    np.testing.assert_allclose(y @ k.T, expected, atol=1e-8)


def test_savgol_even_window_keeps_constants():
    """Even windows (NAVSIM's 8) still preserve constants and, at the edges, linear ramps."""
    k = savgol_operator(41, 8, 2)
    np.testing.assert_allclose(np.ones(41) @ k.T, 1.0)
    ramp = np.arange(41.0)
    np.testing.assert_allclose((ramp @ k.T)[:4], ramp[:4], atol=1e-9)


def test_obb_overlap_cases():
    """Two 4×2 boxes: side by side 1.9 m apart overlap (half widths 1 + 1 > 1.9), 2.1 m apart they do not;
    end to end they touch at 4 m. A 2×2 square rotated 45° reaches √2 along x, so beside an axis-aligned
    2×2 square it touches iff the centres are at most 1 + √2 apart."""
    z = np.zeros(2)
    assert obb_overlap(z, 0.0, 2.0, 1.0, np.array([0.0, 1.9]), 0.0, 2.0, 1.0)
    assert not obb_overlap(z, 0.0, 2.0, 1.0, np.array([0.0, 2.1]), 0.0, 2.0, 1.0)
    assert obb_overlap(z, 0.0, 2.0, 1.0, np.array([4.0, 0.0]), 0.0, 2.0, 1.0)
    assert not obb_overlap(z, 0.0, 2.0, 1.0, np.array([4.01, 0.0]), 0.0, 2.0, 1.0)
    r = np.hypot(1.0, 1.0)
    assert obb_overlap(z, 0.0, 1.0, 1.0, np.array([1.0 + r - 0.01, 0.0]), np.pi / 4, 1.0, 1.0)
    assert not obb_overlap(z, 0.0, 1.0, 1.0, np.array([1.0 + r + 0.01, 0.0]), np.pi / 4, 1.0, 1.0)


def test_segment_overlap_and_bearing():
    """A lateral segment at x = 2 (half length 1) touches a box centred at x = 3 with half-length 1.05 but
    not 0.95; bearings: straight ahead 0, behind π, to the left π/2."""
    mid = np.array([2.0, 0.0])
    assert segment_obb_overlap(mid, np.pi / 2, 1.0, np.array([3.0, 0.0]), 0.0, 1.05, 1.0)
    assert not segment_obb_overlap(mid, np.pi / 2, 1.0, np.array([3.0, 0.0]), 0.0, 0.95, 1.0)
    assert not segment_obb_overlap(mid, np.pi / 2, 1.0, np.array([2.0, 2.5]), 0.0, 1.0, 1.0)
    o = np.zeros(2)
    np.testing.assert_allclose(
        bearing_angle(o, 0.0, np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 3.0]])), [0, np.pi, np.pi / 2]
    )
