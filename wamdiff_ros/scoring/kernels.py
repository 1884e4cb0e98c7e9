"""The scorer's compiled loops (numba): box-against-agent contacts, points in lane quads, ``np.minimum.at``.

Each walks a query's grid bucket once and keeps only what passes, where numpy would gather every
(query, bucket item) pair into index arrays first: for 4,096 candidates hundreds of thousands of
entries, gathered several times over. The arithmetic is the numpy tests' own, in the same order
(:func:`wamdiff_ros.scoring.collision._separated`, the crossing-number rule), so the answers are too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _cell(x: float, y: float, origin: np.ndarray, size: float, rows: int, cols: int) -> int:
    """Row-major index of the grid cell of edge ``size`` [m] from ``origin`` holding (x, y); −1 outside."""
    fx = math.floor((x - origin[0]) / size)
    fy = math.floor((y - origin[1]) / size)
    if not (0.0 <= fx < cols and 0.0 <= fy < rows):
        return -1
    return int(fy) * cols + int(fx)


@njit(cache=True)
def minimum_at(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """``np.minimum.at(target, index, values)`` for 1-D arrays (numpy's unbuffered ``ufunc.at`` pays a
    dispatch per element)."""
    for i in range(len(index)):
        j = index[i]
        target[j] = min(target[j], values[i])


@njit(cache=True)
def box_contacts(
    center_x: np.ndarray,
    center_y: np.ndarray,
    cos_yaw: np.ndarray,
    sin_yaw: np.ndarray,
    speed: np.ndarray,
    n_q: int,
    k: int,
    dt: float,
    query: np.ndarray,
    before: np.ndarray,
    ego_hl: float,
    ego_hw: float,
    origin: np.ndarray,
    size: float,
    rows: int,
    cols: int,
    start: np.ndarray,
    item: np.ndarray,
    agent_x: np.ndarray,
    agent_y: np.ndarray,
    agent_cos: np.ndarray,
    agent_sin: np.ndarray,
    radius2: np.ndarray,
    steps: int,
    agent_hl: np.ndarray,
    agent_hw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g, t, a) of every touching pair, ordered by g then t.

    Args:
        center_x, center_y, cos_yaw, sin_yaw, speed: (G, T) the ego boxes' centres [m], headings and
            speeds [m/s]; the box of step t < ``n_q`` is moved ahead by |speed|·k·dt [m] and tested
            against the agents at step t + ``k``.
        query: (G, n_q) bool, the boxes to test; empty (0, 0): all.
        before: (G·A,) only steps t < before[g·A + a] count; empty: all do.
        ego_hl, ego_hw: ego half length and width [m].
        origin, size, rows, cols, start, item, agent_x … radius2, steps: the
            :class:`~wamdiff_ros.scoring.agent_grid.AgentGrid`.
        agent_hl, agent_hw: (A,) agent half sizes [m].
    """
    n_g = center_x.shape[0]
    n_agents = len(agent_hl)
    per_layer = rows * cols
    every = query.shape[0] == 0
    cut = len(before) > 0
    cap = 1024
    out_g = np.empty(cap, np.int64)
    out_t = np.empty(cap, np.int64)
    out_a = np.empty(cap, np.int64)
    n = 0
    for g in range(n_g):
        for t in range(n_q):
            if not every and not query[g, t]:
                continue
            co1, si1 = cos_yaw[g, t], sin_yaw[g, t]
            ahead = abs(speed[g, t]) * k * dt
            x = center_x[g, t] + co1 * ahead
            y = center_y[g, t] + si1 * ahead
            cell = _cell(x, y, origin, size, rows, cols)
            if cell < 0:
                continue
            bucket = (t + k) * per_layer + cell
            for j in range(start[bucket], start[bucket + 1]):
                it = item[j]
                dx = agent_x[it] - x
                dy = agent_y[it] - y
                if not dx * dx + dy * dy <= radius2[it]:
                    continue
                a = it // steps
                if cut and not t < before[g * n_agents + a]:
                    continue
                co2, si2 = agent_cos[it], agent_sin[it]
                c = abs(co2 * co1 + si2 * si1)
                s = abs(si2 * co1 - co2 * si1)
                hl2, hw2 = agent_hl[a], agent_hw[a]
                if abs(dx * co1 + dy * si1) > ego_hl + hl2 * c + hw2 * s:
                    continue
                if abs(-dx * si1 + dy * co1) > ego_hw + hl2 * s + hw2 * c:
                    continue
                if abs(dx * co2 + dy * si2) > hl2 + ego_hl * c + ego_hw * s:
                    continue
                if abs(-dx * si2 + dy * co2) > hw2 + ego_hl * s + ego_hw * c:
                    continue
                if n == cap:
                    cap *= 2
                    out_g = np.concatenate((out_g, np.empty(cap - n, np.int64)))
                    out_t = np.concatenate((out_t, np.empty(cap - n, np.int64)))
                    out_a = np.concatenate((out_a, np.empty(cap - n, np.int64)))
                out_g[n], out_t[n], out_a[n] = g, t, a
                n += 1
    return out_g[:n], out_t[:n], out_a[:n]


@njit(cache=True)
def quads_contain(
    x: np.ndarray,
    y: np.ndarray,
    origin: np.ndarray,
    size: float,
    rows: int,
    cols: int,
    start: np.ndarray,
    item: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    by: np.ndarray,
    run: np.ndarray,
    rise: np.ndarray,
) -> np.ndarray:
    """(P,) bool: points (x, y) (P,) [m] strictly inside any quad of their bucket (crossing-number rule).

    Args:
        origin, size, rows, cols, start, item: the quads' :class:`~wamdiff_ros.scoring.buckets.Buckets`.
        ax, ay, by, run, rise: (Q, 4) each quad's edges: start x, start y, end y, end x − start x,
            end y − start y.
    """
    out = np.zeros(len(x), np.bool_)
    for p in range(len(x)):
        bucket = _cell(x[p], y[p], origin, size, rows, cols)
        if bucket < 0:
            continue
        for j in range(start[bucket], start[bucket + 1]):
            q = item[j]
            crossings = 0
            for e in range(4):
                if (ay[q, e] > y[p]) != (by[q, e] > y[p]):
                    crossings += x[p] < ax[q, e] + (y[p] - ay[q, e]) * run[q, e] / rise[q, e]
            if crossings % 2 == 1:
                out[p] = True
                break
    return out
