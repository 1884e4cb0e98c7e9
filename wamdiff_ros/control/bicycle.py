"""Batched kinematic bicycle model with the rear axle as reference point (nuPlan/NAVSIM style).

A state is a float64 array (..., 9) indexed by :class:`StateIndex`; every function works on any
leading batch shape, so G candidates step together. Commands pass through first-order lags
(``accel_time_constant``, ``steer_time_constant``) as in NAVSIM's ``BatchKinematicBicycleModel``;
the optional rate/acceleration limits default to "off", which reproduces NAVSIM exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from wamdiff_ros.geometry import wrap_angle


class StateIndex(IntEnum):
    """Columns of a bicycle state array (rear-axle reference, map or any fixed frame)."""

    X = 0  # [m]
    Y = 1  # [m]
    YAW = 2  # [rad]
    V = 3  # longitudinal speed [m/s]
    ACCEL = 4  # longitudinal acceleration [m/s²]
    STEER = 5  # front-wheel steering angle [rad]
    STEER_RATE = 6  # [rad/s]
    YAW_RATE = 7  # [rad/s]
    YAW_ACCEL = 8  # [rad/s²]


STATE_DIM = len(StateIndex)


@dataclass(frozen=True)
class BicycleParams:
    """Kinematic bicycle parameters. Defaults: NAVSIM's Chrysler Pacifica model.

    Attributes:
        wheelbase: rear-to-front axle distance [m].
        max_steer: steering-angle limit [rad].
        max_steer_rate: steering-rate limit [rad/s] (inf: none, as NAVSIM).
        accel_min, accel_max: longitudinal acceleration limits [m/s²] (±inf: none, as NAVSIM).
        accel_time_constant: first-order lag on the acceleration command [s].
        steer_time_constant: first-order lag on the steering command [s].
        allow_reverse: False clamps the speed at 0 (NAVSIM lets it go negative).
    """

    wheelbase: float = 3.089
    max_steer: float = np.pi / 3
    max_steer_rate: float = np.inf
    accel_min: float = -np.inf
    accel_max: float = np.inf
    accel_time_constant: float = 0.2
    steer_time_constant: float = 0.05
    allow_reverse: bool = True

    def __post_init__(self):
        if not self.wheelbase > 0:
            raise ValueError(f"BicycleParams.wheelbase: expected > 0 m, got {self.wheelbase}")
        if not 0 < self.max_steer < np.pi / 2:
            raise ValueError(f"BicycleParams.max_steer: expected in (0, π/2) rad, got {self.max_steer}")
        if not self.max_steer_rate > 0:
            raise ValueError(f"BicycleParams.max_steer_rate: expected > 0 rad/s, got {self.max_steer_rate}")
        if not self.accel_min < self.accel_max:
            raise ValueError(f"BicycleParams: expected accel_min < accel_max, got {self.accel_min}, {self.accel_max}")
        if self.accel_time_constant < 0 or self.steer_time_constant < 0:
            raise ValueError("BicycleParams: time constants must be >= 0 s")


def make_states(
    pose: np.ndarray,
    speed: np.ndarray | float = 0.0,
    accel: np.ndarray | float = 0.0,
    steer: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Bicycle states (..., 9) from rear-axle poses (..., 3) and scalars/arrays broadcasting with them."""
    pose = np.asarray(pose, np.float64)
    if pose.shape[-1:] != (3,):
        raise ValueError(f"make_states: pose must have shape (..., 3), got {pose.shape}")
    out = np.zeros((*pose.shape[:-1], STATE_DIM))
    out[..., :3] = pose
    out[..., StateIndex.V] = speed
    out[..., StateIndex.ACCEL] = accel
    out[..., StateIndex.STEER] = steer
    return out


def steer_from_yaw_rate(speed: float, yaw_rate: float, params: BicycleParams) -> float:
    """Steering angle that produces ``yaw_rate`` at ``speed`` (0 when nearly stopped), clipped to limits."""
    if abs(speed) < 0.1:
        return 0.0
    return float(np.clip(np.arctan(yaw_rate * params.wheelbase / speed), -params.max_steer, params.max_steer))


def _advance(x, y, yaw, v, a, delta, a_cmd, ideal_delta, dt: float, p: BicycleParams, tan_delta=None, out=None):
    """One Euler step on separate component arrays; returns (x, y, yaw, v, a, delta, steer_rate,
    yaw_rate, tan(delta)) of the new state. ``tan_delta``: tan(delta), if at hand; ``out``: arrays
    to write the first eight into."""
    o_x, o_y, o_yaw, o_v, o_a, o_delta, o_rate, o_omega = (None,) * 8 if out is None else out
    if p.accel_min > -np.inf or p.accel_max < np.inf:
        a_cmd = np.minimum(np.maximum(a_cmd, p.accel_min), p.accel_max)
    a_new = np.add(a, (dt / (dt + p.accel_time_constant)) * (a_cmd - a), out=o_a)
    rate = (ideal_delta - delta) * (1.0 / (dt + p.steer_time_constant))
    if p.max_steer_rate < np.inf:
        rate = np.minimum(np.maximum(rate, -p.max_steer_rate), p.max_steer_rate)
    if o_rate is not None:
        o_rate[...] = rate
    dist = dt * v
    x_new = np.add(x, dist * np.cos(yaw), out=o_x)
    y_new = np.add(y, dist * np.sin(yaw), out=o_y)
    tan_delta = np.tan(delta) if tan_delta is None else tan_delta
    yaw_new = wrap_angle(yaw + dist * tan_delta / p.wheelbase, out=o_yaw)
    v_new = v + dt * a_new
    if not p.allow_reverse:
        v_new = np.maximum(v_new, 0.0)
    if o_v is not None:
        o_v[...] = v_new
    delta_new = np.minimum(np.maximum(delta + dt * rate, -p.max_steer), p.max_steer, out=o_delta)
    tan_new = np.tan(delta_new)
    omega = np.divide(v_new * tan_new, p.wheelbase, out=o_omega)
    return x_new, y_new, yaw_new, v_new, a_new, delta_new, rate, omega, tan_new


def step(
    states: np.ndarray,
    accel: np.ndarray | float,
    steer_rate: np.ndarray | float | None = None,
    dt: float = 0.1,
    params: BicycleParams | None = None,
    *,
    steer: np.ndarray | float | None = None,
) -> np.ndarray:
    """Propagate states (..., 9) by ``dt`` seconds under an acceleration command and either a steering-rate
    command or a steering-angle target (exactly one of ``steer_rate`` / ``steer``).

    Euler integration in NAVSIM's order: the lagged commands are computed first, position and heading
    advance with the *previous* speed and steering angle, then speed and steering are updated.
    Returns new states (..., 9).
    """
    p = params or BicycleParams()
    if (steer_rate is None) == (steer is None):
        raise ValueError("step: give exactly one of steer_rate or steer")
    if not dt > 0:
        raise ValueError(f"step: dt must be > 0 s, got {dt}")
    s = np.asarray(states, np.float64)
    if s.shape[-1] != STATE_DIM:
        raise ValueError(f"step: states must have shape (..., {STATE_DIM}), got {s.shape}")
    delta = s[..., StateIndex.STEER]
    if steer is None:
        ideal = delta + dt * np.asarray(steer_rate, np.float64)
    else:
        ideal = np.clip(np.asarray(steer, np.float64), -p.max_steer, p.max_steer)
    comps = _advance(
        s[..., StateIndex.X],
        s[..., StateIndex.Y],
        s[..., StateIndex.YAW],
        s[..., StateIndex.V],
        s[..., StateIndex.ACCEL],
        delta,
        np.asarray(accel, np.float64),
        ideal,
        dt,
        p,
    )
    out = np.empty(np.broadcast_shapes(s.shape, (*np.shape(comps[0]), STATE_DIM)))
    for idx, val in zip(
        (
            StateIndex.X,
            StateIndex.Y,
            StateIndex.YAW,
            StateIndex.V,
            StateIndex.ACCEL,
            StateIndex.STEER,
            StateIndex.STEER_RATE,
            StateIndex.YAW_RATE,
        ),
        comps[:8],
    ):
        out[..., idx] = val
    out[..., StateIndex.YAW_ACCEL] = (comps[7] - s[..., StateIndex.YAW_RATE]) / dt
    return out
