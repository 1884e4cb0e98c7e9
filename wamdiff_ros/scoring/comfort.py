"""Comfort metrics on simulated ego states: C (NAVSIM v1), HC (v2 history comfort) and EC (v2 extended
comfort between consecutive frames).

Derivatives and smoothing use Savitzky–Golay filters written here as (n, n) linear operators that
follow ``scipy.signal.savgol_filter(mode="interp")``: interior samples use the sliding-window fit,
the first and last ``window // 2`` samples a polynomial fit to the edge window. Window sizes, orders and
the 8-decimal rounding are NAVSIM's (including its yaw filters always using a window of 5).
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np

from wamdiff_ros.control.bicycle import StateIndex
from wamdiff_ros.control.lqr import matmul_rows
from wamdiff_ros.scoring import metrics as M


@lru_cache(maxsize=64)
def savgol_operator(n: int, window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """(n, n) matrix ``K`` so that ``y @ K.T`` is the Savitzky–Golay filtered (or differentiated) ``y``."""
    w = min(window, n)
    if polyorder >= w:
        raise ValueError(f"savgol_operator: polyorder {polyorder} must be < window {w}")
    half = w // 2
    even = 1 if w % 2 == 0 else 0
    out = np.zeros((n, n))
    for i in range(n):
        if i < half:
            start, at = 0, float(i)
        elif i >= n - half:
            start, at = n - w, float(i)
        else:
            start = i - half + even
            at = start + (w - 1) / 2
        z = (np.arange(start, start + w) - at) * delta
        vander = z[:, None] ** np.arange(polyorder + 1)[None]
        coef = np.linalg.pinv(vander)
        if deriv <= polyorder:
            out[i, start : start + w] = coef[deriv] * factorial(deriv)
    return out


def _filt(y: np.ndarray, window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    k = savgol_operator(y.shape[-1], window, polyorder, deriv, delta)
    return np.round(matmul_rows(y, k.T), 8)


def _unwrap(h: np.ndarray) -> np.ndarray:
    adj = np.zeros_like(h)
    adj[..., 1:] = np.cumsum(np.round(np.diff(h, axis=-1) / (2 * np.pi)), axis=-1)
    return h - 2 * np.pi * adj


def _within(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((x > lo) & (x < hi)).all(-1)


def body_accelerations(states: np.ndarray, center_offset: float, physical: bool) -> tuple[np.ndarray, ...]:
    """``(ax_rear, ay_rear, ax_center, ay_center)`` each (G, n) [m/s²].

    NAVSIM's bicycle stores zero lateral acceleration at the rear axle and shifts it to the box centre by
    the displacement ``[d, 0]``, so both of nuPlan's terms, ``+d·ω²`` and ``+d·α``, land on the
    longitudinal axis; ``physical=True`` instead uses ``ay = v·ω`` and the rigid-body terms ``−d·ω²``
    (longitudinal) and ``+d·α`` (lateral).
    """
    ax = states[..., StateIndex.ACCEL]
    om = states[..., StateIndex.YAW_RATE]
    al = states[..., StateIndex.YAW_ACCEL]
    if physical:
        ay = states[..., StateIndex.V] * om
        return ax, ay, ax - center_offset * om**2, ay + center_offset * al
    ay = np.zeros_like(ax)
    return ax, ay, ax + center_offset * (om**2 + al), ay


def comfort(states: np.ndarray, dt: float, center_offset: float, physical: bool = False) -> tuple[np.ndarray, ...]:
    """``(HC, C)``, (G,) bool each: NAVSIM v2's history comfort (``ego_is_comfortable``, box-centre
    longitudinal acceleration, windows 8 and 15) and v1's comfort (rear-axle accelerations, the whole
    horizon as window for acceleration and jerk); all six bounds held at all steps. The yaw filters and
    the smoothed acceleration magnitude are shared; without ``physical`` the lateral acceleration is zero
    and passes both."""
    n = states.shape[-2]
    ax, ay, axc, ayc = body_accelerations(states, center_offset, physical)
    heading = _unwrap(states[..., StateIndex.YAW])
    accel = _filt(np.hypot(ax, ay) if physical else np.abs(ax), 8, 2)
    both = _within(_filt(heading, 5, 3, 2, dt), -M.MAX_ABS_YAW_ACCEL, M.MAX_ABS_YAW_ACCEL) & _within(
        _filt(heading, 5, 2, 1, dt), -M.MAX_ABS_YAW_RATE, M.MAX_ABS_YAW_RATE
    )
    lon = _filt(axc, 8, 2)
    hc = (
        both
        & _within(lon, M.MIN_LON_ACCEL, M.MAX_LON_ACCEL)
        & _within(_filt(accel, 15, 2, 1, dt), -M.MAX_ABS_JERK, M.MAX_ABS_JERK)
        & _within(_filt(lon, 15, 2, 1, dt), -M.MAX_ABS_LON_JERK, M.MAX_ABS_LON_JERK)
    )
    c = (
        both
        & _within(_filt(ax, n, 2), M.MIN_LON_ACCEL, M.MAX_LON_ACCEL)
        & _within(_filt(accel, n, 2, 1, dt), -M.MAX_ABS_JERK, M.MAX_ABS_JERK)
        & _within(_filt(_filt(ax, 8, 2), n, 2, 1, dt), -M.MAX_ABS_LON_JERK, M.MAX_ABS_LON_JERK)
    )
    if physical:
        hc &= _within(_filt(ayc, 8, 2), -M.MAX_ABS_LAT_ACCEL, M.MAX_ABS_LAT_ACCEL)
        c &= _within(_filt(ay, n, 2), -M.MAX_ABS_LAT_ACCEL, M.MAX_ABS_LAT_ACCEL)
    return hc, c


def ec_features(states: np.ndarray, dt: float, physical: bool = False) -> dict[str, np.ndarray]:
    """Per-step features compared by EC: acceleration magnitude, jerk, yaw rate, yaw acceleration."""
    ax, ay, _, _ = body_accelerations(states, 0.0, physical)
    heading = _unwrap(states[..., StateIndex.YAW])
    acc = _filt(np.hypot(ax, ay), 8, 2)
    return {
        "accel": acc,
        "jerk": _filt(acc, 15, 2, 1, dt),
        "yaw_rate": _filt(heading, 5, 2, 1, dt),
        "yaw_accel": _filt(heading, 5, 2, 2, dt),
    }


def extended_comfort(
    current: np.ndarray, previous: np.ndarray, offset_steps: int, dt: float, physical: bool = False
) -> np.ndarray:
    """EC (G,) float: 1 where the RMS differences between ``current[:, :-k]`` (G, n, 9) and
    ``previous[k:]`` (n, 9), k = ``offset_steps`` (the time between the frames in steps), stay within bounds."""
    k = int(offset_steps)
    n = current.shape[1]
    if not 0 < k < n - 2:
        raise ValueError(f"extended_comfort: offset_steps must be in (0, {n - 2}), got {k}")
    cur = ec_features(current[:, : n - k], dt, physical)
    prev = ec_features(previous[None, k:], dt, physical)

    def rms(name: str) -> np.ndarray:
        return np.sqrt(((cur[name] - prev[name]) ** 2).mean(-1))

    ok = (
        (rms("accel") <= M.EC_ACCEL)
        & (rms("jerk") <= M.EC_JERK)
        & (rms("yaw_rate") <= M.EC_YAW_RATE)
        & (rms("yaw_accel") <= M.EC_YAW_ACCEL)
    )
    return ok.astype(np.float64)
