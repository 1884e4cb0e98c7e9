"""Constant-twist motion on SE(2): the exponential and logarithm, and propagating an ego state in time."""

from __future__ import annotations

import math

import numpy as np

from wamdiff_ros.geometry import wrap_angle
from wamdiff_ros.stamps import ns_to_seconds
from wamdiff_ros.types import EgoState


def _v_terms(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sin θ / θ`` and ``(1 − cos θ) / θ`` with their series near 0 (the V matrix of SE(2)'s exponential)."""
    th = np.asarray(th, np.float64)
    small = np.abs(th) < 1e-6
    safe = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th**2 / 6, np.sin(safe) / safe)
    b = np.where(small, th / 2, (1 - np.cos(safe)) / safe)
    return a, b


def se2_exp(xi: np.ndarray) -> np.ndarray:
    """Poses (..., 3) reached from the origin by a constant body twist ``xi`` (..., 3) = (vx, vy, ω)·t."""
    xi = np.asarray(xi, np.float64)
    a, b = _v_terms(xi[..., 2])
    dx, dy = xi[..., 0], xi[..., 1]
    return np.stack([a * dx - b * dy, b * dx + a * dy, wrap_angle(xi[..., 2])], -1)


def se2_log(pose: np.ndarray) -> np.ndarray:
    """Twist (..., 3) whose exponential is ``pose`` (..., 3), for |yaw| < π."""
    pose = np.asarray(pose, np.float64)
    a, b = _v_terms(pose[..., 2])
    det = a * a + b * b
    x, y = pose[..., 0], pose[..., 1]
    return np.stack([(a * x + b * y) / det, (-b * x + a * y) / det, pose[..., 2]], -1)


def propagate(ego: EgoState, stamp_ns: int) -> EgoState:
    """``ego`` moved to ``stamp_ns`` [ns] at its constant body velocity and yaw rate (backwards if earlier).

    :func:`se2_exp` and :func:`~wamdiff_ros.geometry.compose` for one pose, in scalars: this runs in
    every planning cycle, where numpy's per-call overhead on (3,) arrays cost 45 µs.
    """
    dt = ns_to_seconds(stamp_ns - ego.stamp_ns)
    vx, vy, th = float(ego.velocity[0]) * dt, float(ego.velocity[1]) * dt, ego.yaw_rate * dt
    if abs(th) < 1e-6:
        a, b = 1.0 - th * th / 6, th / 2
    else:
        a, b = math.sin(th) / th, (1 - math.cos(th)) / th
    dx, dy = a * vx - b * vy, b * vx + a * vy
    x, y, yaw = (float(v) for v in ego.pose)
    c, s = math.cos(yaw), math.sin(yaw)
    return EgoState(
        pose=np.array([x + c * dx - s * dy, y + s * dx + c * dy, wrap_angle(yaw + th)]),
        velocity=ego.velocity.copy(),
        acceleration=ego.acceleration.copy(),
        yaw_rate=ego.yaw_rate,
        stamp_ns=stamp_ns,
    )


def constant_twist_path(ego: EgoState, times: np.ndarray, use_yaw_rate: bool = True) -> np.ndarray:
    """(T, 3) base_link poses the ego reaches at ``times`` [s] holding its current twist: an arc at the
    current yaw rate, or (``use_yaw_rate=False``) straight along the heading at the speed |(vx, vy)|."""
    if use_yaw_rate:
        twist = np.array([ego.velocity[0], ego.velocity[1], ego.yaw_rate])
    else:
        twist = np.array([float(np.hypot(*ego.velocity[:2])), 0.0, 0.0])
    return se2_exp(np.asarray(times, np.float64)[:, None] * twist)
