"""Batched LQR trajectory tracker on the kinematic bicycle (NAVSIM's ``BatchLQRTracker`` semantics).

The reference is a pose sequence sampled every ``dt``; speed and curvature profiles are fitted to it by
regularised least squares (jerk and curvature-rate penalties), then each step solves two one-step LQR
problems over a ``tracking_horizon`` look-ahead: longitudinal (speed → acceleration) and lateral
(lateral error, heading error, steering angle → steering rate). Near standstill a P controller stops
the car. Everything is vectorised over the batch axis; the look-ahead products are in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from wamdiff_ros.control.bicycle import BicycleParams, StateIndex, step
from wamdiff_ros.geometry import wrap_angle


@dataclass(frozen=True)
class LQRParams:
    """Tracker weights and settings (defaults: NAVSIM's).

    Attributes:
        q_longitudinal, r_longitudinal: speed-error and acceleration weights.
        q_lateral: weights of (lateral error [m], heading error [rad], steering angle [rad]).
        r_lateral: steering-rate weight.
        tracking_horizon: look-ahead in steps.
        jerk_penalty: regulariser of the speed-profile fit.
        curvature_rate_penalty: regulariser of the curvature-profile fit.
        stopping_gain: P gain of the stopping controller [1/s].
        stopping_velocity: below this reference and current speed the stopping controller runs [m/s].
    """

    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    tracking_horizon: int = 10
    jerk_penalty: float = 1e-4
    curvature_rate_penalty: float = 1e-2
    stopping_gain: float = 0.5
    stopping_velocity: float = 0.2

    def __post_init__(self):
        if self.tracking_horizon < 2:
            raise ValueError(f"LQRParams.tracking_horizon: expected >= 2 steps, got {self.tracking_horizon}")
        if not (self.jerk_penalty > 0 and self.curvature_rate_penalty > 0):
            raise ValueError("LQRParams: jerk_penalty and curvature_rate_penalty must be > 0")
        if len(self.q_lateral) != 3:
            raise ValueError(f"LQRParams.q_lateral: expected 3 weights, got {self.q_lateral}")


@lru_cache(maxsize=32)
def _speed_smoother(m: int, lam: float) -> np.ndarray:
    """(m, m) matrix S with v = S v̂ minimising ‖v − v̂‖² + lam·‖Δ²v‖² (a Whittaker smoother)."""
    if m < 3:
        return np.eye(m)
    d2 = np.zeros((m - 2, m))
    idx = np.arange(m - 2)
    d2[idx, idx], d2[idx, idx + 1], d2[idx, idx + 2] = 1.0, -2.0, 1.0
    return np.linalg.inv(np.eye(m) + lam * d2.T @ d2)


def _solve_tridiagonal(lower: float, diag: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve batched symmetric tridiagonal systems (B, m) with constant off-diagonal ``lower`` (Thomas)."""
    b, m = diag.shape
    c = np.empty((b, m))
    d = np.empty((b, m))
    c[:, 0] = lower / diag[:, 0]
    d[:, 0] = rhs[:, 0] / diag[:, 0]
    for k in range(1, m):
        den = diag[:, k] - lower * c[:, k - 1]
        c[:, k] = lower / den
        d[:, k] = (rhs[:, k] - lower * d[:, k - 1]) / den
    x = np.empty((b, m))
    x[:, -1] = d[:, -1]
    for k in range(m - 2, -1, -1):
        x[:, k] = d[:, k] - c[:, k] * x[:, k + 1]
    return x


def fit_speed_curvature(
    poses: np.ndarray, dt: float, jerk_penalty: float = 1e-4, curvature_rate_penalty: float = 1e-2
) -> tuple[np.ndarray, np.ndarray]:
    """Speed and curvature profiles (B, N−1) of pose sequences (B, N, 3) sampled every ``dt`` s.

    Same optimum as NAVSIM's two regularised least-squares fits: speed minimises
    Σ‖Δxy_k − dt·v_k·(cos ψ_k, sin ψ_k)‖² + jerk_penalty·Σ(Δ²v/dt)²/dt²… which reduces to a constant
    smoother on the heading-projected speeds; curvature minimises Σ(Δψ_k − v_k·dt·κ_k)² +
    curvature_rate_penalty·Σ(Δκ/dt)² + 1e-10·κ_0², a tridiagonal system per trajectory.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] < 2:
        raise ValueError(f"fit_speed_curvature: poses must be (B, N>=2, 3), got {poses.shape}")
    d = np.diff(poses, axis=1)
    h = poses[:, :-1, 2]
    v_hat = (d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)) / dt
    m = v_hat.shape[1]
    v = v_hat @ _speed_smoother(m, jerk_penalty / dt**4).T
    dpsi = wrap_angle(d[..., 2])
    w = (v * dt) ** 2
    c = curvature_rate_penalty / dt**2
    if m == 1:
        kappa = (v * dt * dpsi) / (w + 1e-10)
        return v, kappa
    deg = np.full(m, 2.0)
    deg[0] = deg[-1] = 1.0
    diag = w + c * deg
    diag[:, 0] += 1e-10
    kappa = _solve_tridiagonal(-c, diag, v * dt * dpsi)
    return v, kappa


def track(
    reference: np.ndarray,
    initial: np.ndarray,
    dt: float,
    lqr: LQRParams | None = None,
    bicycle: BicycleParams | None = None,
) -> np.ndarray:
    """Track reference pose sequences (G, N, 3) from initial bicycle states (G, 9) or (9,).

    ``reference[:, 0]`` is the reference at the initial time. Returns simulated states (G, N, 9) with
    ``[:, 0]`` equal to the initial states.
    """
    q = lqr or LQRParams()
    bp = bicycle or BicycleParams()
    ref = np.asarray(reference, np.float64)
    if ref.ndim != 3 or ref.shape[-1] != 3 or ref.shape[1] < 3:
        raise ValueError(f"track: reference must be (G, N>=3, 3), got {ref.shape}")
    g, n, _ = ref.shape
    init = np.broadcast_to(np.asarray(initial, np.float64), (g, len(StateIndex)))
    v_prof, k_prof = fit_speed_curvature(ref, dt, q.jerk_penalty, q.curvature_rate_penalty)
    m = v_prof.shape[1]
    hz = q.tracking_horizon
    ks = np.arange(hz) * dt
    q1, q2, q3 = q.q_lateral
    b_lon = hz * dt

    out = np.empty((g, n, len(StateIndex)))
    out[:, 0] = init
    s = out[:, 0].copy()
    for i in range(n - 1):
        r_idx = min(i + hz, m - 1)
        v_ref = v_prof[:, r_idx]
        span = r_idx - i
        kap = np.empty((g, hz))
        kap[:, :span] = k_prof[:, i:r_idx]
        kap[:, span:] = k_prof[:, r_idx, None]

        v0 = s[:, StateIndex.V]
        stop = (v_ref <= q.stopping_velocity) & (v0 <= q.stopping_velocity)
        acc_lqr = -(b_lon * q.q_longitudinal * (v0 - v_ref)) / (b_lon * q.q_longitudinal * b_lon + q.r_longitudinal)
        accel = np.where(stop, -q.stopping_gain * (v0 - v_ref), acc_lqr)

        r_pose = ref[:, i]
        dx, dy = s[:, 0] - r_pose[:, 0], s[:, 1] - r_pose[:, 1]
        cr, sr = np.cos(r_pose[:, 2]), np.sin(r_pose[:, 2])
        e0 = -dx * sr + dy * cr
        psi0 = wrap_angle(s[:, StateIndex.YAW] - r_pose[:, 2])
        delta0 = s[:, StateIndex.STEER]

        vk = v0[:, None] + accel[:, None] * ks
        ck = vk * dt / bp.wheelbase
        gk = -vk * kap * dt
        step_p = ck * delta0[:, None] + gk
        step_q = ck * ks
        p_excl = np.cumsum(step_p, axis=1) - step_p
        q_excl = np.cumsum(step_q, axis=1) - step_q
        err_e = e0 + dt * (vk * (psi0[:, None] + p_excl)).sum(1)
        err_psi = wrap_angle(psi0 + step_p.sum(1))
        err_delta = wrap_angle(delta0)
        b_e = dt * (vk * q_excl).sum(1)
        b_psi = step_q.sum(1)
        b_delta = hz * dt
        num = q1 * b_e * err_e + q2 * b_psi * err_psi + q3 * b_delta * err_delta
        den = q1 * b_e**2 + q2 * b_psi**2 + q3 * b_delta**2 + q.r_lateral
        steer_rate = np.where(stop, 0.0, -num / den)

        s = step(s, accel, steer_rate, dt, bp)
        out[:, i + 1] = s
    return out
