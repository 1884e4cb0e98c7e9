"""Which ego boxes can touch which agents: the broad phase of the collision tests.

Per scene, every valid agent's bounding circle at every time step, grown by the ego's bounding circle,
is listed in the buckets it reaches of a square grid with one layer per time step. A query point (an
ego box centre with the agent time it meets) is tested against the agents of its bucket only
(:mod:`wamdiff_ros.scoring.kernels`), with the same arithmetic as a brute-force circle test, so
the pairs it keeps are exactly those a test of every agent would keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CELL = 1.5  # [m] bucket edge
_MAX_BUCKETS = 2_000_000  # larger windows get coarser buckets
_MARGIN = 1e-6  # [m] keeps the buckets a superset of the circle test despite rounding


@dataclass
class AgentGrid:
    """Agent-time circles bucketed per time step (layer).

    Attributes:
        x, y, cos, sin: (A·S,) centre [m] and heading of agent ``a`` at step ``s`` at index ``a·S + s``.
        radius2: (A·S,) squared sum of the ego's and the agent's bounding-circle radius [m²].
        origin: (2,) lower-left corner of the grid [m]; size: bucket edge [m]; shape: (layers, rows, cols).
        start: (layers·rows·cols + 1,) int32: bucket ``b``'s entries are ``item[start[b]:start[b + 1]]``
            (one small table, so a lookup per query box stays in cache).
        item: int32 agent-time index of every entry.
    """

    x: np.ndarray
    y: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    radius2: np.ndarray
    origin: np.ndarray
    size: float
    shape: tuple[int, int, int]
    start: np.ndarray
    item: np.ndarray


def build_agent_grid(
    center: np.ndarray, yaw: np.ndarray, valid: np.ndarray, reach: np.ndarray, ego_reach: float
) -> AgentGrid:
    """Grid of agents with centres (A, S, 2) [m], headings (A, S), ``valid`` (A, S) and bounding-circle
    radii ``reach`` (A,) [m] for an ego whose bounding circle has radius ``ego_reach`` [m]."""
    steps = valid.shape[1]
    a, s = np.nonzero(valid)
    radius = ego_reach + reach
    grow = (radius[a] + _MARGIN)[:, None]
    lo, hi = center[a, s] - grow, center[a, s] + grow
    origin = lo.min(0) if len(a) else np.zeros(2)
    extent = (hi.max(0) - origin) if len(a) else np.zeros(2)
    size = max(_CELL, float(np.sqrt(np.prod(extent + _CELL) * steps / _MAX_BUCKETS)))
    cols, rows = (np.floor(extent / size).astype(np.int64) + 1).tolist()
    c0 = np.floor((lo - origin) / size).astype(np.int64)
    c1 = np.floor((hi - origin) / size).astype(np.int64)
    span = c1 - c0 + 1
    per = span.prod(-1)
    k = np.repeat(np.arange(len(a)), per)
    local = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    col, row = c0[k, 0] + local % span[k, 0], c0[k, 1] + local // span[k, 0]
    gap_x = np.maximum(np.abs(origin[0] + (col + 0.5) * size - center[a[k], s[k], 0]) - size / 2, 0.0)
    gap_y = np.maximum(np.abs(origin[1] + (row + 0.5) * size - center[a[k], s[k], 1]) - size / 2, 0.0)
    touch = np.hypot(gap_x, gap_y) <= grow[k, 0] + _MARGIN
    k = k[touch]
    bucket = s[k] * (rows * cols) + row[touch] * cols + col[touch]
    order = np.argsort(bucket, kind="stable")
    count = np.bincount(bucket, minlength=steps * rows * cols)
    return AgentGrid(
        x=np.ascontiguousarray(center[..., 0]).reshape(-1),
        y=np.ascontiguousarray(center[..., 1]).reshape(-1),
        cos=np.cos(yaw).reshape(-1),
        sin=np.sin(yaw).reshape(-1),
        radius2=np.repeat(radius**2, steps),
        origin=origin,
        size=size,
        shape=(steps, rows, cols),
        start=np.concatenate([[0], np.cumsum(count)]).astype(np.int32),
        item=(a * steps + s)[k[order]].astype(np.int32),
    )
