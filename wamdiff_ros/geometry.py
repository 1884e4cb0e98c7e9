"""SE(2) geometry on ``(x, y, yaw)`` poses, trajectory resampling and polyline projection.

All functions are vectorised over leading axes: a pose array has shape (..., 3), a point array
(..., 2). Angles in radians, counter-clockwise (REP-103).
"""

from __future__ import annotations

import math

import numpy as np

from wamdiff_ros.nearest_segment import nearest_segment


def wrap_angle(angle: np.ndarray | float, out: np.ndarray | None = None) -> np.ndarray | float:
    """Wrap angles to [-π, π); a float for a float (scalar code in the planning loop calls this per pose).

    Arrays give exactly ``(angle + π) % 2π − π`` (NumPy's floored remainder), from the cheaper ``fmod``;
    ``out``: an array to write them into."""
    if isinstance(angle, float):
        return (angle + math.pi) % (2 * math.pi) - math.pi
    r = np.fmod(np.asarray(angle) + np.pi, 2 * np.pi)
    return np.subtract(np.where(r < 0, r + 2 * np.pi, r), np.pi, out=out)


def wrap_near(angle: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`wrap_angle` for float arrays that are mostly in [-π, π) already (a difference of two
    headings, a heading after one step's turn): in-range values are copied unchanged, about a third of
    ``fmod``'s cost, and only the others are wrapped. Not bit-identical to :func:`wrap_angle`, which
    rounds in-range values through ``+π − π``; scene construction keeps that one, so the scene keys
    that stored labels are filed under do not move. ``out``: an array to write into."""
    angle = np.asarray(angle, np.float64)
    inside = (angle >= -np.pi) & (angle < np.pi)
    if out is None:
        out = angle.copy()
    else:
        np.copyto(out, angle)
    if not inside.all():
        outside = ~inside
        out[outside] = wrap_angle(angle[outside])
    return out


def quaternion_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw [rad] of an orientation quaternion (rotation about z, REP-103)."""
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def rotation(yaw: np.ndarray | float) -> np.ndarray:
    """Rotation matrices, shape (..., 2, 2)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pose composition ``a ⊕ b``: ``b`` expressed in frame ``a``, returned in ``a``'s parent frame."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = a[..., 0] + c * b[..., 0] - s * b[..., 1]
    y = a[..., 1] + s * b[..., 0] + c * b[..., 1]
    return np.stack([x, y, wrap_angle(a[..., 2] + b[..., 2])], -1)


def inverse(a: np.ndarray) -> np.ndarray:
    """Inverse pose ``a⁻¹`` so that ``compose(a, inverse(a))`` is the identity."""
    a = np.asarray(a, np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = -c * a[..., 0] - s * a[..., 1]
    y = s * a[..., 0] - c * a[..., 1]
    return np.stack([x, y, wrap_angle(-a[..., 2])], -1)


def relative(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Express ``poses`` (parent frame) in the frame of ``origin``: ``origin⁻¹ ⊕ poses``."""
    return compose(inverse(origin), poses)


def to_local_points(origin: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Parent-frame points (..., 2) expressed in the frame of ``origin`` (..., 3).

    ``origin`` broadcasts against ``points`` minus its last axis (add axes as needed).
    """
    o = np.asarray(origin, np.float64)
    d = np.asarray(points, np.float64) - o[..., :2]
    c, s = np.cos(o[..., 2]), np.sin(o[..., 2])
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def to_global_points(origin: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 2) in the frame of ``origin`` (..., 3) expressed in the parent frame."""
    o = np.asarray(origin, np.float64)
    p = np.asarray(points, np.float64)
    c, s = np.cos(o[..., 2]), np.sin(o[..., 2])
    return np.stack([o[..., 0] + c * p[..., 0] - s * p[..., 1], o[..., 1] + s * p[..., 0] + c * p[..., 1]], -1)


def unwrap_yaw(poses: np.ndarray, axis: int = -2) -> np.ndarray:
    """Copy of ``poses`` with yaw unwrapped along the time ``axis`` (so interpolation is safe)."""
    out = np.array(poses, np.float64, copy=True)
    out[..., 2] = np.unwrap(out[..., 2], axis=axis + 1 if axis < 0 else axis)
    return out


def _brackets(times: np.ndarray, new_times: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``new_times`` (M,): the index of the interval of ``times`` (T,) it falls in and its
    weight on that interval's end, clamped to the end values outside ``times``; ValueError naming
    ``name`` unless ``times`` is strictly increasing with at least two entries."""
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"{name}: times must be (T >= 2,), got {times.shape}")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"{name}: times must be strictly increasing")
    idx = np.clip(np.searchsorted(times, new_times, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    return idx, np.clip((new_times - t0) / (t1 - t0), 0.0, 1.0)


def interpolation_matrix(times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """(M, T) weights ``W`` such that ``W @ v`` interpolates values ``v`` (T,) given at ``times`` onto
    ``new_times`` (M,) as :func:`resample` does (linear, clamped to the end values), for batches of
    thousands of trajectories on one grid: one matrix product instead of gathers."""
    times = np.asarray(times, np.float64)
    new_times = np.asarray(new_times, np.float64)
    idx, w = _brackets(times, new_times, "interpolation_matrix")
    out = np.zeros((len(new_times), len(times)))
    rows = np.arange(len(new_times))
    out[rows, idx] = 1 - w
    out[rows, idx + 1] += w
    return out


def resample(poses: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linearly interpolate poses (..., T, 3) given at ``times`` (T,) onto ``new_times`` (M,).

    Yaw is unwrapped before and wrapped after interpolation. Times outside ``times`` are clamped to
    the end poses. Returns (..., M, 3).
    """
    poses = unwrap_yaw(poses)
    times = np.asarray(times, np.float64)
    new_times = np.asarray(new_times, np.float64)
    if times.ndim != 1 or times.shape[0] != poses.shape[-2]:
        raise ValueError(f"resample: times must be ({poses.shape[-2]},), got {times.shape}")
    idx, w = _brackets(times, new_times, "resample")
    w = w[:, None]
    out = poses[..., idx, :] * (1 - w) + poses[..., idx + 1, :] * w
    out[..., 2] = wrap_angle(out[..., 2])
    return out


def prepend_origin(poses: np.ndarray) -> np.ndarray:
    """Prepend the identity pose (the ego now, in base_link) to trajectories (..., T, 3)."""
    poses = np.asarray(poses, np.float64)
    zero = np.zeros((*poses.shape[:-2], 1, 3))
    return np.concatenate([zero, poses], axis=-2)


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length along polylines (..., N, 2) -> (..., N), starting at 0."""
    seg = np.linalg.norm(np.diff(points, axis=-2), axis=-1)
    return np.concatenate([np.zeros((*seg.shape[:-1], 1)), np.cumsum(seg, axis=-1)], axis=-1)


def curvature(poses: np.ndarray, dt: float) -> np.ndarray:
    """Signed path curvature (..., T) [1/m] from pose trajectories sampled every ``dt`` s.

    Computed as yaw rate over speed; zero where the speed is below 0.1 m/s.
    """
    poses = unwrap_yaw(poses)
    speed = np.linalg.norm(np.gradient(poses[..., :2], dt, axis=-2), axis=-1)
    yaw_rate = np.gradient(poses[..., 2], dt, axis=-1)
    return np.where(speed > 0.1, yaw_rate / np.maximum(speed, 0.1), 0.0)


def project_to_polyline(points: np.ndarray, polyline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points (..., 2) onto a polyline (N, 2).

    Returns ``(s, d, heading)``: arc length of the closest point along the polyline [m], signed lateral
    offset (positive to the left of the direction of travel) [m], and the polyline's heading there
    [rad]; each of shape (...). Points beyond either end are projected onto the extended end segment,
    so ``s`` may be negative or exceed the length.
    """
    polyline = np.asarray(polyline, np.float64)
    p = np.asarray(points, np.float64)
    flat = p.reshape(-1, 2)
    px, py = flat[:, 0], flat[:, 1]
    ab = polyline[1:] - polyline[:-1]
    seg_len2 = np.maximum((ab**2).sum(-1), 1e-12)
    k, tk = nearest_segment(px, py, polyline, seg_len2)
    abk = ab[k]
    seg_len = np.sqrt(seg_len2[k])
    s = arc_length(polyline)[k] + tk * seg_len
    cross = abk[:, 0] * (py - polyline[k, 1]) - abk[:, 1] * (px - polyline[k, 0])
    d = cross / seg_len
    heading = np.arctan2(abk[:, 1], abk[:, 0])
    return tuple(x.reshape(p.shape[:-1])[()] for x in (s, d, heading))


def interpolate_polyline(polyline: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Poses (..., 3) at arc lengths ``s`` along a polyline (N, 2); ends extrapolate linearly."""
    polyline = np.asarray(polyline, np.float64)
    cum = arc_length(polyline)
    s = np.asarray(s, np.float64)
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(polyline) - 2)
    seg = polyline[k + 1] - polyline[k]
    seg_len = np.maximum(cum[k + 1] - cum[k], 1e-12)
    w = ((s - cum[k]) / seg_len)[..., None]
    xy = polyline[k] + w * seg
    return np.concatenate([xy, np.arctan2(seg[..., 1], seg[..., 0])[..., None]], -1)


def box_corners(poses: np.ndarray, length: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    """Corners (..., 4, 2) of oriented boxes centred at ``poses`` (..., 3), counter-clockwise from
    front-left."""
    poses = np.asarray(poses, np.float64)
    x, y = box_corner_xy(poses[..., :2], np.cos(poses[..., 2]), np.sin(poses[..., 2]), length, width)
    return np.ascontiguousarray(np.stack([np.moveaxis(x, 0, -1), np.moveaxis(y, 0, -1)], -1))


def box_corner_xy(
    center: np.ndarray, cos: np.ndarray, sin: np.ndarray, length: np.ndarray | float, width: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Corner coordinates ``(x, y)``, (4, ...) each, counter-clockwise from front-left, of oriented boxes
    with centres (..., 2), heading cosine and sine (...), length and width (...)."""
    center = np.asarray(center, np.float64)
    hl = np.asarray(length, np.float64) / 2
    hw = np.asarray(width, np.float64) / 2
    along_x, across_x = cos * hl, sin * hw
    along_y, across_y = sin * hl, cos * hw
    front_x, back_x = center[..., 0] + along_x, center[..., 0] - along_x
    front_y, back_y = center[..., 1] + along_y, center[..., 1] - along_y
    shape = np.broadcast_shapes(np.shape(front_x), np.shape(across_x))
    x, y = np.empty((4, *shape)), np.empty((4, *shape))
    np.subtract(front_x, across_x, out=x[0, ...])
    np.subtract(back_x, across_x, out=x[1, ...])
    np.add(back_x, across_x, out=x[2, ...])
    np.add(front_x, across_x, out=x[3, ...])
    np.add(front_y, across_y, out=y[0, ...])
    np.add(back_y, across_y, out=y[1, ...])
    np.subtract(back_y, across_y, out=y[2, ...])
    np.subtract(front_y, across_y, out=y[3, ...])
    return x, y


def path_yaw(xy: np.ndarray, min_step: float = 0.05) -> np.ndarray:
    """(..., T, ≥2) paths that start after the origin -> (..., T) headings [rad].

    With the origin prepended as point 0, waypoint i's heading is the direction of the chord from
    point i-1 to point i+1 (central difference; the last waypoint uses its incoming segment). A chord
    shorter than ``min_step`` m (standing still) keeps the previous heading, starting from 0.
    """
    xy = np.asarray(xy, np.float64)[..., :2]
    p = np.concatenate([np.zeros((*xy.shape[:-2], 1, 2)), xy], axis=-2)
    n = xy.shape[-2]
    d = p[..., np.minimum(np.arange(2, n + 2), n), :] - p[..., :n, :]
    valid = np.hypot(d[..., 0], d[..., 1]) >= min_step
    last = np.maximum.accumulate(np.where(valid, np.arange(n), -1), axis=-1)
    raw = np.arctan2(d[..., 1], d[..., 0])
    return np.where(last >= 0, np.take_along_axis(raw, np.maximum(last, 0), axis=-1), 0.0)


def smooth_path(xy: np.ndarray, times: np.ndarray, degree: int) -> np.ndarray:
    """(..., T, ≥2) waypoints at ``times`` [s] -> (..., T, 3) poses: each coordinate replaced by its
    least-squares polynomial ``Σ_{k=1..degree} c_k t^k`` (through the ego origin at t = 0), yaw from
    :func:`path_yaw`.

    Degree 2 is constant acceleration per axis: it removes waypoint-to-waypoint jitter (of decoded bins,
    of residual diffusion noise) while keeping curves and speed changes over a 4 s horizon.
    """
    xy = np.asarray(xy, np.float64)[..., :2]
    t = np.asarray(times, np.float64).reshape(-1)
    if xy.ndim < 2 or len(t) != xy.shape[-2] or degree < 1:
        raise ValueError(
            f"smooth_path: expected one time per waypoint and degree >= 1, got {len(t)} times, waypoints "
            f"{xy.shape}, degree {degree}"
        )
    basis = np.stack([t**k for k in range(1, min(degree, len(t)) + 1)], axis=1)
    fit = basis @ np.linalg.pinv(basis) @ xy
    return np.concatenate([fit, path_yaw(fit)[..., None]], axis=-1)
