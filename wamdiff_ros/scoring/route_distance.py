"""Distance from map points to the route centre line (NAVSIM's lane-keeping deviation), exact within a
reach and cheap per point.

NAVSIM measures LK as the distance from the box centre to the route's centre-line polyline. Scoring
queries tens of thousands of points per call, so the route's segments, each grown by ``reach``, are
bucketed once per scene (:mod:`wamdiff_ros.scoring.buckets`) and a query measures the exact distance to
the few segments of its bucket. LK only asks whether a point is farther than ``reach``: a coarse raster,
also built once per scene, answers that for every cell that lies wholly within or wholly beyond the
reach, and only points in the cells the reach's edge crosses are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.scoring.buckets import Buckets, bucket_boxes

_BUCKET = 1.0  # [m]
_CELL = 0.25  # [m] edge of the within / beyond raster's cells (a quarter bucket)
_MARGIN = 1e-9  # [m] slack of the cell classes, far above rounding
_WITHIN, _EDGE, _BEYOND = 0, 1, 2


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
    cells: np.ndarray

    def exceeds(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(...) bool: ``distance(points) > reach`` for map points with coordinates ``x``, ``y`` (...),
        measuring only points near the reach's edge. ``cells`` (rows, cols) int8 classes the raster of
        ``_CELL`` [m] from the bucket grid's origin: every point within the reach, every point beyond
        it, or neither."""
        rows, cols = self.cells.shape
        col = np.floor((x - self.segments.origin[0]) / _CELL).astype(np.int64)
        row = np.floor((y - self.segments.origin[1]) / _CELL).astype(np.int64)
        inside = (col.view(np.uint64) < cols) & (row.view(np.uint64) < rows)
        row *= cols
        row += col
        code = np.where(inside, np.take(self.cells.reshape(-1), row, mode="clip"), _EDGE)
        out = code == _BEYOND
        edge = np.nonzero(code == _EDGE)
        out[edge] = self.distance(np.stack([x[edge], y[edge]], -1)) > self.reach
        return out

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
    return RouteDistance(route, segments, float(reach), _classify_cells(route, segments, reach))


def _classify_cells(route: np.ndarray, segments: Buckets, reach: float) -> np.ndarray:
    """Cells of the bucket grid's window, each classed by its centre's distance to the route: within or
    beyond ``reach`` by more than half a cell diagonal, else on the edge."""
    rows, cols = (round(n * segments.size / _CELL) for n in segments.shape)
    half_diag = _CELL * np.sqrt(0.5)
    grow = reach + half_diag + _MARGIN
    a, b = route[:-1], route[1:]
    top = [cols - 1, rows - 1]
    c0 = np.clip(np.floor((np.minimum(a, b) - grow - segments.origin) / _CELL).astype(np.int64), 0, top)
    c1 = np.clip(np.floor((np.maximum(a, b) + grow - segments.origin) / _CELL).astype(np.int64), -1, top)
    span = np.maximum(c1 - c0 + 1, 0)
    n = span.prod(-1)
    k = np.repeat(np.arange(len(a)), n)
    local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    cx = c0[k, 0] + local % span[k, 0]
    cy = c0[k, 1] + local // span[k, 0]
    centre = segments.origin + (np.stack([cx, cy], -1) + 0.5) * _CELL
    ab = b[k] - a[k]
    t = np.clip(((centre - a[k]) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    d = np.hypot(*(centre - a[k] - t[:, None] * ab).T)
    code = np.where(
        d + half_diag < reach - _MARGIN, _WITHIN, np.where(d - half_diag <= reach + _MARGIN, _EDGE, _BEYOND)
    )
    cells = np.full(rows * cols, _BEYOND, np.int8)
    np.minimum.at(cells, cy * cols + cx, code.astype(np.int8))
    return cells.reshape(rows, cols)
