"""Ego-box against agent-box contacts through the agent grid, compiled (numba).

For every query box: its grid bucket's agent-time entries, the bounding-circle test, the ``before``
cut, then the separating-axis test (:func:`wamdiff_ros.scoring.collision._separated`'s arithmetic).
One pass, no pair arrays: in numpy the candidate pairs of 4,096 candidates are hundreds of thousands of
index entries gathered several times over.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def box_contacts(
    x: np.ndarray,
    y: np.ndarray,
    layer: np.ndarray,
    flat: np.ndarray,
    n_q: int,
    ego_steps: int,
    ego_cos: np.ndarray,
    ego_sin: np.ndarray,
    ego_hl: float,
    ego_hw: float,
    origin: np.ndarray,
    size: float,
    rows: int,
    cols: int,
    start: np.ndarray,
    count: np.ndarray,
    item: np.ndarray,
    agent_x: np.ndarray,
    agent_y: np.ndarray,
    agent_cos: np.ndarray,
    agent_sin: np.ndarray,
    radius2: np.ndarray,
    steps: int,
    agent_hl: np.ndarray,
    agent_hw: np.ndarray,
    before: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g, t, a) of every touching pair, in query order.

    Args:
        x, y: (P,) query box centres [m]; layer: (P,) agent time of each; flat: (P,) index g·n_q + t.
        ego_steps: steps per candidate in ``ego_cos`` / ``ego_sin`` (G·ego_steps,), the ego headings.
        ego_hl, ego_hw: ego half length and width [m].
        origin, size, rows, cols, start, count, item, agent_x … radius2, steps: the
            :class:`~wamdiff_ros.scoring.agent_grid.AgentGrid`.
        agent_hl, agent_hw: (A,) agent half sizes [m].
        before: (G·A,) only steps t < before[g·A + a] count; empty: all do.
    """
    n_agents = len(agent_hl)
    per_layer = rows * cols
    cap = 1024
    out_g = np.empty(cap, np.int64)
    out_t = np.empty(cap, np.int64)
    out_a = np.empty(cap, np.int64)
    n = 0
    for p in range(len(x)):
        fx = math.floor((x[p] - origin[0]) / size)
        fy = math.floor((y[p] - origin[1]) / size)
        if not (0.0 <= fx < cols and 0.0 <= fy < rows):
            continue
        bucket = layer[p] * per_layer + int(fy) * cols + int(fx)
        k0 = start[bucket]
        k1 = k0 + count[bucket]
        if k0 == k1:
            continue
        g = flat[p] // n_q
        t = flat[p] - g * n_q
        pe = g * ego_steps + t
        co1, si1 = ego_cos[pe], ego_sin[pe]
        for k in range(k0, k1):
            it = item[k]
            dx = agent_x[it] - x[p]
            dy = agent_y[it] - y[p]
            if not dx * dx + dy * dy <= radius2[it]:
                continue
            a = it // steps
            if len(before) and not t < before[g * n_agents + a]:
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
