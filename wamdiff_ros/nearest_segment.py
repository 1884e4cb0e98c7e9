"""The segment of a polyline nearest to each point, for many points and long polylines.

The choice is exactly that of a search of every segment (same arithmetic, ties to the lower index, the
first and last segments extended beyond the ends), but each point is tested against only the segments
that can be nearest: interior segments come in blocks of :data:`_BLOCK`, and a block is skipped when its
bounding box is farther from the point than a vertex of the polyline is.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 4  # interior segments per block
_SLACK = 1e-9  # relative and absolute [m²] slack of the block test, far above rounding
_DENSE = 4096  # points × segments below which every segment is tested


def _clipped(px, py, ax, ay, abx, aby, seg_len2, lo, hi):
    """``(t, dist2)`` of points (px, py) on segments from (ax, ay) along (abx, aby), t clipped to [lo, hi]."""
    t = np.clip((((px - ax) * abx) + ((py - ay) * aby)) / seg_len2, lo, hi)
    dx = px - (ax + t * abx)
    dy = py - (ay + t * aby)
    return t, dx * dx + dy * dy


def nearest_segment(
    px: np.ndarray, py: np.ndarray, polyline: np.ndarray, seg_len2: np.ndarray, dense_below: float = _DENSE
) -> tuple[np.ndarray, np.ndarray]:
    """``(k, t)``, (P,) each: the nearest segment of the polyline (N >= 2, 2) to points (px, py) (P,) and
    the clipped projection parameter on it; ``seg_len2`` (N−1,) the squared segment lengths (floored)."""
    a = polyline[:-1]
    ab = polyline[1:] - a
    n_seg = len(ab)
    seg = np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1]), ab[:, 0].copy(), ab[:, 1].copy(), seg_len2
    if n_seg <= 2 or len(px) * n_seg < dense_below:
        lo, hi = np.zeros(n_seg), np.ones(n_seg)
        lo[0], hi[-1] = -np.inf, np.inf
        t, d2 = _clipped(px[:, None], py[:, None], *seg, lo, hi)
        k = np.argmin(d2, axis=1)
        return k, t[np.arange(len(k)), k]
    t0, d0 = _clipped(px, py, *(x[0] for x in seg), -np.inf, 1.0)
    tn, dn = _clipped(px, py, *(x[-1] for x in seg), 0.0, np.inf)

    starts = np.arange(1, n_seg - 1, _BLOCK)
    ends = np.minimum(starts + _BLOCK, n_seg - 1)
    box_lo = np.minimum.reduceat(np.minimum(a[1:-1], polyline[2:-1]), starts - 1)
    box_hi = np.maximum.reduceat(np.maximum(a[1:-1], polyline[2:-1]), starts - 1)
    vx, vy = polyline[starts, 0], polyline[starts, 1]
    best = np.minimum(d0, dn)
    upper = np.minimum(((px[:, None] - vx) ** 2 + (py[:, None] - vy) ** 2).min(1), best)
    gx = np.maximum(np.maximum(box_lo[:, 0] - px[:, None], px[:, None] - box_hi[:, 0]), 0.0)
    gy = np.maximum(np.maximum(box_lo[:, 1] - py[:, None], py[:, None] - box_hi[:, 1]), 0.0)
    kp, kb = np.nonzero(gx * gx + gy * gy <= upper[:, None] * (1 + _SLACK) + _SLACK)

    n = ends[kb] - starts[kb]
    point = np.repeat(kp, n)
    at_seg = np.repeat(starts[kb] - np.cumsum(n) + n, n) + np.arange(len(point))
    ti, di = _clipped(px[point], py[point], *(x[at_seg] for x in seg), 0.0, 1.0)
    if len(point):
        first = np.flatnonzero(np.r_[True, point[1:] != point[:-1]])
        best[point[first]] = np.minimum(best[point[first]], np.minimum.reduceat(di, first))
    k = np.full(len(px), n_seg - 1)
    tk = tn
    at = np.flatnonzero(di == best[point])
    at = at[np.r_[True, point[at][1:] != point[at][:-1]]] if len(at) else at
    k[point[at]], tk[point[at]] = at_seg[at], ti[at]
    lead = d0 == best
    k[lead], tk[lead] = 0, t0[lead]
    return k, tk
