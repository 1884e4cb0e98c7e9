"""Batched LQR trajectory tracker on the kinematic bicycle (NAVSIM's ``BatchLQRTracker`` semantics).

The reference is a pose sequence sampled every ``dt``; speed and curvature profiles are fitted to it by
regularised least squares (jerk and curvature-rate penalties), then each step solves two one-step LQR
problems over a ``tracking_horizon`` look-ahead: longitudinal (speed → acceleration) and lateral
(lateral error, heading error, steering angle → steering rate). Near standstill a P controller stops
the car. The profile fits are vectorised over the batch axis; the look-ahead products are in closed form,
and the time loop runs compiled, one candidate at a time (:mod:`wamdiff_ros.control.lqr_kernel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from wamdiff_ros.control.bicycle import BicycleParams, StateIndex
from wamdiff_ros.control.lqr_kernel import track_loop
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


def matmul_rows(a: np.ndarray, b: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``a @ b`` for a tall ``a`` (..., k) and small ``b`` (k, m), in row blocks.

    Small blocks keep OpenBLAS single-threaded; its thread pool costs more than it saves on a busy
    two-core machine, where the scorer's many small products would otherwise wait on it.
    """
    flat = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
    out = np.empty((flat.shape[0], b.shape[1]))
    for i in range(0, flat.shape[0], chunk):
        np.matmul(flat[i : i + chunk], b, out=out[i : i + chunk])
    return out.reshape(*a.shape[:-1], b.shape[1])


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
    dg, r = np.ascontiguousarray(diag.T), np.ascontiguousarray(rhs.T)
    m = dg.shape[0]
    c = np.empty_like(dg)
    d = np.empty_like(dg)
    c[0] = lower / dg[0]
    d[0] = r[0] / dg[0]
    for k in range(1, m):
        inv = 1.0 / (dg[k] - lower * c[k - 1])
        c[k] = lower * inv
        d[k] = (r[k] - lower * d[k - 1]) * inv
    x = np.empty_like(dg)
    x[-1] = d[-1]
    for k in range(m - 2, -1, -1):
        x[k] = d[k] - c[k] * x[k + 1]
    return x.T


def fit_speed_curvature(
    poses: np.ndarray,
    dt: float,
    jerk_penalty: float = 1e-4,
    curvature_rate_penalty: float = 1e-2,
    heading: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Speed and curvature profiles (B, N−1) of pose sequences (B, N, 3) sampled every ``dt`` s.

    Same optimum as NAVSIM's two regularised least-squares fits, solved in closed form. Speed: the data
    term Σ‖Δxy_k − dt·v_k·(cos ψ_k, sin ψ_k)‖² equals dt²·Σ(v_k − v̂_k)² + const with v̂_k the heading-
    projected displacement over dt, and the jerk penalty is jerk_penalty·Σ(Δ²v/dt)², so v is a fixed
    (Whittaker) smoother applied to v̂. Curvature: Σ(Δψ_k − v_k·dt·κ_k)² + curvature_rate_penalty·Σ(Δκ/dt)²
    + 1e-10·κ_0² gives one tridiagonal system per trajectory. ``heading``: cos and sin (B, N−1) of the
    poses' yaw but the last, if at hand.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] < 2:
        raise ValueError(f"fit_speed_curvature: poses must be (B, N>=2, 3), got {poses.shape}")
    d = np.diff(poses, axis=1)
    cos_h, sin_h = heading or (np.cos(poses[:, :-1, 2]), np.sin(poses[:, :-1, 2]))
    v_hat = (d[..., 0] * cos_h + d[..., 1] * sin_h) / dt
    m = v_hat.shape[1]
    v = matmul_rows(v_hat, _speed_smoother(m, jerk_penalty / dt**4).T)
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


def _horizon_constants(hz: int) -> tuple[np.ndarray, dict[str, float]]:
    """Weights that turn the lateral look-ahead products into closed form.

    With speed v_k = v0 + a·dt·k over the horizon, the Euler-discretised lateral dynamics after ``hz``
    steps are polynomial in (v0, a); the curvature enters only through the five weighted sums
    returned as columns of the (hz, 5) matrix.
    """
    k = np.arange(hz, dtype=np.float64)
    t1 = np.cumsum(k) - k
    t2 = np.cumsum(k**2) - k**2
    r = hz - 1 - k
    s = k.sum() - np.cumsum(k)
    weights = np.stack([np.ones(hz), k, r, s + k * r, k * s], 1)
    const = {
        "K1": k.sum(),
        "K2": (k**2).sum(),
        "C1": t1.sum(),
        "C2": (t2 + k * t1).sum(),
        "C3": (k * t2).sum(),
        "D1": r.sum(),
        "D2": (s + k * r).sum(),
        "D3": (k * s).sum(),
    }
    return weights, const


def track(
    reference: np.ndarray,
    initial: np.ndarray,
    dt: float,
    lqr: LQRParams | None = None,
    bicycle: BicycleParams | None = None,
) -> np.ndarray:
    """Track reference pose sequences (G, N, 3) from initial bicycle states (G, 9) or (9,).

    ``reference[:, 0]`` is the reference at the initial time. Returns simulated states (G, N, 9) with
    ``[:, 0]`` equal to the initial states: a view of a (9, G, N) array, so that each state component
    is contiguous over candidates and time.
    """
    return track_with_heading(reference, initial, dt, lqr, bicycle)[0]


def track_with_heading(
    reference: np.ndarray,
    initial: np.ndarray,
    dt: float,
    lqr: LQRParams | None = None,
    bicycle: BicycleParams | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`track`, and the cos and sin (G, N) of every simulated heading, which the tracker computes
    anyway and a scorer would otherwise compute again."""
    q = lqr or LQRParams()
    bp = bicycle or BicycleParams()
    ref = np.ascontiguousarray(reference, np.float64)
    if ref.ndim != 3 or ref.shape[-1] != 3 or ref.shape[1] < 3:
        raise ValueError(f"track: reference must be (G, N>=3, 3), got {ref.shape}")
    g, n, _ = ref.shape
    dim = len(StateIndex)
    yaw_ref = np.ascontiguousarray(ref[:, :, 2])
    cos_r, sin_r = np.cos(yaw_ref), np.sin(yaw_ref)
    v_prof, k_prof = fit_speed_curvature(
        ref, dt, q.jerk_penalty, q.curvature_rate_penalty, (cos_r[:, :-1], sin_r[:, :-1])
    )
    m = v_prof.shape[1]
    hz = q.tracking_horizon
    wl = bp.wheelbase
    weights, c = _horizon_constants(hz)
    k_pad = np.empty((g, n - 1 + hz))
    k_pad[:, :m] = k_prof
    k_pad[:, m:] = k_prof[:, -1:]
    v_refs = np.ascontiguousarray(v_prof[:, np.minimum(np.arange(n - 1) + hz, m - 1)])
    b_lon = hz * dt
    lon_gain = b_lon * q.q_longitudinal / (b_lon * q.q_longitudinal * b_lon + q.r_longitudinal)
    # rows: Σv_k, Σv_k·W_k, ∂ψ_H/∂u, ∂e_H/∂u as polynomials in (v0, a·dt, v0², v0·a·dt, (a·dt)²)
    poly = np.array(
        [
            [hz, c["K1"], 0.0, 0.0, 0.0],
            [0.0, 0.0, c["D1"], c["D2"], c["D3"]],
            [dt * dt / wl * c["K1"], dt * dt / wl * c["K2"], 0.0, 0.0, 0.0],
            [0.0, 0.0, dt**3 / wl * c["C1"], dt**3 / wl * c["C2"], dt**3 / wl * c["C3"]],
        ]
    )
    gains = np.array([dt, lon_gain, q.stopping_velocity, q.stopping_gain, *q.q_lateral, q.r_lateral, hz], np.float64)
    params = np.array(
        [
            wl,
            bp.max_steer,
            bp.max_steer_rate,
            bp.accel_min,
            bp.accel_max,
            bp.accel_time_constant,
            bp.steer_time_constant,
            float(bp.allow_reverse),
        ]
    )
    out = np.empty((dim + 2, g, n))  # the states by component, then cos and sin of their headings
    out[:dim, :, 0] = np.broadcast_to(np.asarray(initial, np.float64), (g, dim)).T
    track_loop(out, ref, cos_r, sin_r, v_refs, k_pad, weights, poly, gains, params)
    return np.moveaxis(out[:dim], 0, -1), out[dim], out[dim + 1]
