"""Arc length of points projected on the route centre line (EP's progress), for thousands of points.

:func:`polyline_station` returns exactly the ``s`` of :func:`wamdiff_ros.geometry.project_to_polyline`
(same arithmetic, same nearest segment, ties to the lower index) but tests each point against only the
segments that can be nearest: interior segments come in blocks of :data:`_BLOCK`, and a block is skipped
when its bounding box is farther from the point than a vertex of the polyline is.
"""

from __future__ import annotations

import numpy as np

from wamdiff_ros.geometry import arc_length, project_to_polyline

_BLOCK = 8  # interior segments per block
_SLACK = 1e-9  # relative and absolute [m²] slack of the block test, far above rounding


def _clipped(px, py, a, ab, seg_len2, lo, hi):
    """``(tc, dist2)`` of points (px, py) on segments from ``a`` along ``ab``, t clipped to [lo, hi]."""
    t = np.clip((((px - a[..., 0]) * ab[..., 0]) + ((py - a[..., 1]) * ab[..., 1])) / seg_len2, lo, hi)
    dx = px - (a[..., 0] + t * ab[..., 0])
    dy = py - (a[..., 1] + t * ab[..., 1])
    return t, dx * dx + dy * dy


def polyline_station(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """(P,) arc length of points (P, 2) on a polyline (N >= 2, 2); the end segments extend beyond the ends."""
    poly = np.asarray(polyline, np.float64)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    n_seg = len(poly) - 1
    if n_seg <= 2:
        return project_to_polyline(p, poly)[0]
    a = poly[:-1]
    ab = poly[1:] - a
    seg_len2 = np.maximum((ab**2).sum(-1), 1e-12)
    px, py = p[:, 0], p[:, 1]

    t0, d0 = _clipped(px, py, a[0], ab[0], seg_len2[0], -np.inf, 1.0)
    tn, dn = _clipped(px, py, a[-1], ab[-1], seg_len2[-1], 0.0, np.inf)

    starts = np.arange(1, n_seg - 1, _BLOCK)
    ends = np.minimum(starts + _BLOCK, n_seg - 1)
    box_lo = np.minimum.reduceat(np.minimum(a[1:-1], poly[2:-1]), starts - 1)
    box_hi = np.maximum.reduceat(np.maximum(a[1:-1], poly[2:-1]), starts - 1)
    vx, vy = poly[starts, 0], poly[starts, 1]
    upper = np.minimum(((px[:, None] - vx) ** 2 + (py[:, None] - vy) ** 2).min(1), np.minimum(d0, dn))
    gx = np.maximum(np.maximum(box_lo[:, 0] - px[:, None], px[:, None] - box_hi[:, 0]), 0.0)
    gy = np.maximum(np.maximum(box_lo[:, 1] - py[:, None], py[:, None] - box_hi[:, 1]), 0.0)
    kp, kb = np.nonzero(gx * gx + gy * gy <= upper[:, None] * (1 + _SLACK) + _SLACK)

    n = ends[kb] - starts[kb]
    point = np.repeat(kp, n)
    seg = np.repeat(starts[kb] - np.cumsum(n) + n, n) + np.arange(len(point))
    ti, di = _clipped(px[point], py[point], a[seg], ab[seg], seg_len2[seg], 0.0, 1.0)

    best = np.minimum(d0, dn)
    if len(point):
        first = np.flatnonzero(np.r_[True, point[1:] != point[:-1]])
        best[point[first]] = np.minimum(best[point[first]], np.minimum.reduceat(di, first))
    k = np.full(len(p), n_seg - 1)
    tk = tn.copy()
    at = np.flatnonzero(di == best[point])
    at = at[np.r_[True, point[at][1:] != point[at][:-1]]] if len(at) else at
    k[point[at]], tk[point[at]] = seg[at], ti[at]
    lead = d0 == best
    k[lead], tk[lead] = 0, t0[lead]
    return arc_length(poly)[k] + tk * np.sqrt(seg_len2[k])


def route_station(points: np.ndarray, route: np.ndarray) -> np.ndarray:
    """Arc length (P,) of points (P, 2) projected on the route (N, 2).

    Only the contiguous run of route segments that can hold a nearest point is searched: the distance
    to the nearest of every 8th vertex bounds each point's distance to the route, and segments whose
    bounding box is farther than that bound from the points' bounding box are skipped.
    """
    sub = route[::8]
    d2 = (points[:, :1] - sub[:, 0]) ** 2 + (points[:, 1:] - sub[:, 1]) ** 2
    bound = np.sqrt(d2.min(1).max()) + 1e-6
    lo, hi = points.min(0) - bound, points.max(0) + bound
    a, b = route[:-1], route[1:]
    near = np.flatnonzero(((np.maximum(a, b) >= lo) & (np.minimum(a, b) <= hi)).all(-1))
    i0, i1 = (int(near[0]), int(near[-1]) + 1) if len(near) else (0, len(route) - 1)
    s = polyline_station(points, route[i0 : i1 + 1])
    if i0 > 0 or i1 < len(route) - 1:
        sub_len = np.linalg.norm(np.diff(route[i0 : i1 + 1], axis=0), axis=1).sum()
        if ((s < 0) & (i0 > 0)).any() or ((s > sub_len) & (i1 < len(route) - 1)).any():
            return polyline_station(points, route)
    return s + np.linalg.norm(np.diff(route[: i0 + 1], axis=0), axis=1).sum()
