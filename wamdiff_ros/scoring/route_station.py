"""Arc length of points projected on the route centre line (EP's progress)."""

from __future__ import annotations

import numpy as np

from wamdiff_ros.geometry import project_to_polyline


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
    s = project_to_polyline(points, route[i0 : i1 + 1])[0]
    if i0 > 0 or i1 < len(route) - 1:
        sub_len = np.linalg.norm(np.diff(route[i0 : i1 + 1], axis=0), axis=1).sum()
        if ((s < 0) & (i0 > 0)).any() or ((s > sub_len) & (i1 < len(route) - 1)).any():
            return project_to_polyline(points, route)[0]
    return s + np.linalg.norm(np.diff(route[: i0 + 1], axis=0), axis=1).sum()
