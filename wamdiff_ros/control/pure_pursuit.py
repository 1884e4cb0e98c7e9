"""Pure pursuit: steer toward the point of the planned path one lookahead distance ahead.

Works in base_link (the plan's frame): the path starts at the ego, so the lookahead point is found by
arc length along it. The lookahead grows with speed (``min_lookahead + lookahead_time · v``), which
keeps lane changes smooth at highway speed and turns tight at junction speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import arc_length, interpolate_polyline


@dataclass(frozen=True)
class PurePursuitParams:
    """Attributes:
    min_lookahead: lookahead distance at standstill [m].
    lookahead_time: added lookahead per unit speed [s] (distance = min + time · speed).
    max_lookahead: cap on the lookahead distance [m].
    wheelbase: the vehicle's wheelbase for curvature -> steering [m].
    steer_model: ``"rear_axle"`` (δ = atan(κ·L)) or ``"mid_cg"`` (highway-env's bicycle: centre of
        gravity mid-way, β = asin(κ·L/2), δ = atan(2·tan β)).
    """

    min_lookahead: float = 3.5
    lookahead_time: float = 0.6
    max_lookahead: float = 30.0
    wheelbase: float = 5.0
    steer_model: str = "mid_cg"

    def __post_init__(self):
        if not 0 < self.min_lookahead <= self.max_lookahead:
            raise ValueError(
                f"PurePursuitParams: expected 0 < min_lookahead <= max_lookahead, got {self.min_lookahead}, "
                f"{self.max_lookahead}"
            )
        if self.lookahead_time < 0 or not self.wheelbase > 0:
            raise ValueError("PurePursuitParams: expected lookahead_time >= 0 s and wheelbase > 0 m")
        if self.steer_model not in ("rear_axle", "mid_cg"):
            raise ValueError(
                f"PurePursuitParams.steer_model: expected 'rear_axle' or 'mid_cg', got {self.steer_model!r}"
            )


def lookahead_distance(speed: float, params: PurePursuitParams) -> float:
    return float(np.clip(params.min_lookahead + params.lookahead_time * max(speed, 0.0), 0, params.max_lookahead))


def pursuit_curvature(path: np.ndarray, speed: float, params: PurePursuitParams) -> tuple[float, np.ndarray]:
    """Curvature [1/m] (+ left) of the arc from the origin to the lookahead point of ``path``.

    ``path`` is (N, 2) in base_link, starting near the ego; it is extended linearly past its end when
    the lookahead reaches beyond it. Returns the curvature and the lookahead point (2,).
    """
    path = np.asarray(path, np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) < 2:
        raise ValueError(f"pursuit_curvature.path: expected (N>=2, 2) points in base_link, got {path.shape}")
    s = arc_length(path)
    keep = np.concatenate([[True], np.diff(s) > 1e-6])
    path, s = path[keep], s[keep]
    if len(path) < 2:
        return 0.0, path[0]
    ld = lookahead_distance(speed, params)
    target = interpolate_polyline(path, np.array(ld))[:2]
    d2 = float(target @ target)
    if d2 < 1e-6:
        return 0.0, target
    return float(2.0 * target[1] / d2), target


def steer_for_curvature(kappa: float, params: PurePursuitParams) -> float:
    """Front-wheel steering angle [rad] that drives curvature ``kappa`` [1/m] under ``params.steer_model``."""
    if params.steer_model == "rear_axle":
        return float(np.arctan(kappa * params.wheelbase))
    beta = np.arcsin(np.clip(kappa * params.wheelbase / 2, -1.0, 1.0))
    return float(np.arctan(2.0 * np.tan(beta)))
