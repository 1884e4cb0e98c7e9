"""The batched LQR tracker's time loop, compiled (numba): one candidate at a time, in scalars.

numpy runs the loop as some ninety whole-batch operations per step, each a pass over memory with its own
call overhead; the candidates are independent, so the compiled loop keeps one candidate's state in
registers instead. Same arithmetic as NAVSIM's ``BatchLQRTracker`` step (see :mod:`wamdiff_ros.control.lqr`
for the closed form of the look-ahead products) and the kinematic bicycle's Euler step
(:func:`wamdiff_ros.control.bicycle.step`, NAVSIM's order).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from wamdiff_ros.control.bicycle import StateIndex

_X, _Y, _YAW, _V, _ACCEL, _STEER, _STEER_RATE, _YAW_RATE, _YAW_ACCEL = (int(i) for i in StateIndex)
_DIM = len(StateIndex)


@njit(cache=True, inline="always")
def _wrap_angle(a: float) -> float:
    r = np.fmod(a + math.pi, 2.0 * math.pi)
    if r < 0.0:
        r += 2.0 * math.pi
    return r - math.pi


@njit(cache=True, inline="always")
def _wrap_near(a: float) -> float:
    if -math.pi <= a < math.pi:
        return a
    return _wrap_angle(a)


@njit(cache=True)
def track_loop(
    out: np.ndarray,
    ref: np.ndarray,
    cos_ref: np.ndarray,
    sin_ref: np.ndarray,
    v_refs: np.ndarray,
    k_pad: np.ndarray,
    weights: np.ndarray,
    poly: np.ndarray,
    gains: np.ndarray,
    bicycle: np.ndarray,
) -> None:
    """Simulate every candidate from the initial states already in ``out[:9, :, 0]``.

    Args:
        out: (11, G, N) states by component, then cos and sin of the heading; filled in place.
        ref: (G, N, 3) reference poses; cos_ref, sin_ref: (G, N) of their headings.
        v_refs: (G, N − 1) reference speed at each step's look-ahead end.
        k_pad: (G, N − 1 + H) curvature profile, held at its last value.
        weights: (H, 5) look-ahead weights; poly: (4, 5) look-ahead polynomials.
        gains: dt, lon_gain, stopping_velocity, stopping_gain, q1, q2, q3, r_lateral, horizon.
        bicycle: wheelbase, max_steer, max_steer_rate, accel_min, accel_max, accel_time_constant,
            steer_time_constant, allow_reverse (1 or 0).
    """
    dt, lon_gain, stop_v, stop_gain, q1, q2, q3, r_lat, hz_f = gains
    wl, max_steer, max_rate, a_min, a_max, tau_a, tau_s, reverse = bicycle
    hz = int(hz_f)
    g_count, n = out.shape[1], out.shape[2]
    lag_a = dt / (dt + tau_a)
    lag_s = 1.0 / (dt + tau_s)
    for g in range(g_count):
        x, y, yaw = out[_X, g, 0], out[_Y, g, 0], out[_YAW, g, 0]
        v0, acc, delta0, omega = out[_V, g, 0], out[_ACCEL, g, 0], out[_STEER, g, 0], out[_YAW_RATE, g, 0]
        tan0 = math.tan(delta0)
        for i in range(n - 1):
            v_ref = v_refs[g, i]
            stop = v_ref <= stop_v and v0 <= stop_v
            v_err = v0 - v_ref
            a = -stop_gain * v_err if stop else -lon_gain * v_err

            dx, dy = x - ref[g, i, 0], y - ref[g, i, 1]
            e0 = dy * cos_ref[g, i] - dx * sin_ref[g, i]
            psi0 = _wrap_near(yaw - ref[g, i, 2])
            ad = a * dt
            b0, b1, b2, b3, b4 = v0, ad, v0 * v0, v0 * ad, ad * ad
            vsum = poly[0, 0] * b0 + poly[0, 1] * b1 + poly[0, 2] * b2 + poly[0, 3] * b3 + poly[0, 4] * b4
            vw_sum = poly[1, 0] * b0 + poly[1, 1] * b1 + poly[1, 2] * b2 + poly[1, 3] * b3 + poly[1, 4] * b4
            b_psi = poly[2, 0] * b0 + poly[2, 1] * b1 + poly[2, 2] * b2 + poly[2, 3] * b3 + poly[2, 4] * b4
            b_e = poly[3, 0] * b0 + poly[3, 1] * b1 + poly[3, 2] * b2 + poly[3, 3] * b3 + poly[3, 4] * b4
            k0 = k1 = k2 = k3 = k4 = 0.0
            for j in range(hz):
                kj = k_pad[g, i + j]
                k0 += weights[j, 0] * kj
                k1 += weights[j, 1] * kj
                k2 += weights[j, 2] * kj
                k3 += weights[j, 3] * kj
                k4 += weights[j, 4] * kj
            vk_sum = k0 * b0 + k1 * b1
            vwk_sum = k2 * b2 + k3 * b3 + k4 * b4
            err_e = e0 + dt * psi0 * vsum + (dt * dt / wl) * delta0 * vw_sum - (dt * dt) * vwk_sum
            err_psi = _wrap_near(psi0 + (dt / wl) * delta0 * vsum - dt * vk_sum)
            num = q1 * b_e * err_e + q2 * b_psi * err_psi
            den = q1 * (b_e * b_e) + q2 * (b_psi * b_psi) + r_lat
            if q3 != 0.0:
                num += q3 * hz * dt * _wrap_angle(delta0)
                den += q3 * (hz * dt) ** 2
            steer_rate = 0.0 if stop else -num / den

            a_cmd = min(max(a, a_min), a_max)
            a_new = acc + lag_a * (a_cmd - acc)
            rate = min(max((delta0 + dt * steer_rate - delta0) * lag_s, -max_rate), max_rate)
            dist = dt * v0
            cy, sy = math.cos(yaw), math.sin(yaw)
            out[_DIM, g, i], out[_DIM + 1, g, i] = cy, sy
            x += dist * cy
            y += dist * sy
            yaw = _wrap_near(yaw + dist * tan0 / wl)
            v0 = v0 + dt * a_new
            if reverse == 0.0:
                v0 = max(v0, 0.0)
            delta0 = min(max(delta0 + dt * rate, -max_steer), max_steer)
            tan0 = math.tan(delta0)
            omega_new = v0 * tan0 / wl
            acc = a_new
            t = i + 1
            out[_X, g, t], out[_Y, g, t], out[_YAW, g, t] = x, y, yaw
            out[_V, g, t], out[_ACCEL, g, t], out[_STEER, g, t] = v0, acc, delta0
            out[_STEER_RATE, g, t], out[_YAW_RATE, g, t] = rate, omega_new
            out[_YAW_ACCEL, g, t] = (omega_new - omega) / dt
            omega = omega_new
        out[_DIM, g, n - 1], out[_DIM + 1, g, n - 1] = math.cos(yaw), math.sin(yaw)
