"""Distance from map points to the route centre line (NAVSIM's lane-keeping deviation), exact within a
reach and cheap per point.

NAVSIM measures LK as the distance from the box centre to the route's centre-line polyline. Scoring
queries tens of thousands of points per call, so the route's segments, each grown by ``reach``, are
bucketed once per scene (:mod:`wamdiff_ros.scoring.buckets`) and a query measures the exact distance to
the few segments of its bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.scoring.buckets import Buckets, bucket_boxes

_BUCKET = 1.0  # [m]


@dataclass
class RouteDistance:
    """Per-scene index of the route's segments.

    Attributes:
        route: (N, 2) route centre line [m].
        segments: the segments whose box grown by ``reach`` overlaps each bucket.
        reach: distances up to this are exact [m]; farther points may read ``inf``.
    """

    route: np.ndarray
    segments: Buckets
    reach: float

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(...) distance [m] from map points (..., 2) to the route polyline; ``inf`` beyond ``reach``."""
        p = np.asarray(points, np.float64)
        flat = p.reshape(-1, 2)
        owner, seg = self.segments.pairs(flat)
        out = np.full(len(flat), np.inf)
        if len(owner):
            a, b = self.route[seg], self.route[seg + 1]
            ab = b - a
            q = flat[owner]
            t = np.clip(((q - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
            d = np.hypot(*(q - a - t[:, None] * ab).T)
            first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            out[owner[first]] = np.minimum.reduceat(d, first)
        return out.reshape(p.shape[:-1])


def build_route_distance(route: np.ndarray, lo: np.ndarray, hi: np.ndarray, reach: float) -> RouteDistance:
    """Index the route (N, 2) inside the window ``lo``..``hi`` (2,) [m] for distances up to ``reach`` [m]."""
    route = np.asarray(route, np.float64)
    if route.ndim != 2 or route.shape[1] != 2 or len(route) < 2:
        raise ValueError(f"build_route_distance: route must be (N >= 2, 2), got {route.shape}")
    if not reach > 0:
        raise ValueError(f"build_route_distance: reach must be > 0 m, got {reach}")
    a, b = route[:-1], route[1:]
    segments = bucket_boxes(np.minimum(a, b) - reach, np.maximum(a, b) + reach, lo, hi, _BUCKET)
    return RouteDistance(route, segments, float(reach))
