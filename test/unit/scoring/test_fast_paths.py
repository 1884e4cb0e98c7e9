"""The scorer's pruned searches return exactly what a search of everything returns."""

from __future__ import annotations

import numpy as np
import pytest

from wamdiff_ros.nearest_segment import nearest_segment
from wamdiff_ros.scoring.collision import AgentTrack, EgoTrack, _contacts, current_contacts, obb_overlap
from wamdiff_ros.scoring.route_distance import build_route_distance


def _polyline(rng, kind: int) -> np.ndarray:
    n = int(rng.integers(2, 60))
    if kind == 0:
        return np.cumsum(rng.normal(size=(n, 2)) * 3, 0)
    if kind == 1:
        return np.cumsum(rng.integers(-2, 3, size=(n, 2)), 0).astype(float)
    ang = np.linspace(0, rng.uniform(3, 7), n)
    return np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(5, 30)


@pytest.mark.parametrize("seed", range(30))
def test_pruned_nearest_segment_is_the_dense_search(seed):
    """Random walks, integer zigzags (many exact ties between segments, and repeated points) and arcs
    that loop back: the pruned search picks the segment and projection a test of every segment picks,
    including for points far beyond the ends."""
    rng = np.random.default_rng(seed)
    line = _polyline(rng, seed % 3)
    points = rng.normal(size=(300, 2)) * rng.uniform(1, 40) + line.mean(0)
    if seed % 3 == 1:
        points = np.round(points * 2) / 2
    ab = np.diff(line, axis=0)
    seg_len2 = np.maximum((ab**2).sum(-1), 1e-12)
    pruned = nearest_segment(points[:, 0], points[:, 1], line, seg_len2, dense_below=0)
    dense = nearest_segment(points[:, 0], points[:, 1], line, seg_len2, dense_below=np.inf)
    np.testing.assert_array_equal(pruned[0], dense[0])
    np.testing.assert_array_equal(pruned[1], dense[1])


def _random_agents(rng, a: int, t: int, extent: float) -> AgentTrack:
    """``a`` agents over ``t`` steps anywhere within ±``extent`` m, of mixed sizes, valid 80 % of the time."""
    return AgentTrack(
        rng.uniform(-extent, extent, (a, t, 2)),
        rng.uniform(-np.pi, np.pi, (a, t)),
        np.zeros((a, t)),
        rng.random((a, t)) < 0.8,
        rng.uniform(0.3, 6, a),
        rng.uniform(0.3, 2, a),
        np.zeros(a, int),
    )


@pytest.mark.parametrize("seed", range(5))
def test_contacts_are_every_overlapping_box(seed):
    """Grid broad phase: the (candidate, step, agent) contacts equal a brute-force test of every box
    against every valid agent, for agents of mixed sizes and partial validity."""
    rng = np.random.default_rng(seed)
    g, t, a = 64, 12, 15
    rear = np.concatenate([rng.uniform(-20, 20, (g, t, 2)), rng.uniform(-np.pi, np.pi, (g, t, 1))], -1)
    ego = EgoTrack(
        rear, rear[..., :2] + 0.3, np.full((g, t), 5.0), 2.5, 1.0, np.zeros((g, t), bool), np.zeros((g, t), bool)
    )
    agents = _random_agents(rng, a, t, 20.0)
    got = set(zip(*(x.tolist() for x in current_contacts(ego, agents))))
    hit = obb_overlap(
        ego.center[:, :, None],
        rear[:, :, None, 2],
        2.5,
        1.0,
        np.moveaxis(agents.center, 0, 1)[None],
        agents.yaw.T[None],
        agents.half_length,
        agents.half_width,
    )
    want = set(zip(*(x.tolist() for x in np.nonzero(hit & agents.valid.T[None]))))
    assert got == want and len(want) > 20


@pytest.mark.parametrize("seed", range(4))
def test_projected_contacts_keep_the_query_and_before_cuts(seed):
    """TTC's projected boxes (moved ahead by |speed|·k·0.1 s, reversing too): contacts with agents ``k``
    steps later, among the flagged boxes only and before each pair's cut-off step, equal a brute-force
    test of every box against every agent."""
    rng = np.random.default_rng(seed)
    g, t, a, k = 48, 14, 12, 3
    rear = np.concatenate([rng.uniform(-15, 15, (g, t, 2)), rng.uniform(-np.pi, np.pi, (g, t, 1))], -1)
    agents = _random_agents(rng, a, t, 15.0)
    n = t - k
    speed = rng.uniform(-3.0, 15.0, (g, t))
    ego = EgoTrack(rear, rear[..., :2], speed, 2.4, 1.0, np.zeros((g, t), bool), np.zeros((g, t), bool))
    ahead = np.abs(speed[:, :n]) * k * 0.1
    x, y = rear[:, :n, 0] + np.cos(rear[:, :n, 2]) * ahead, rear[:, :n, 1] + np.sin(rear[:, :n, 2]) * ahead
    query = rng.random((g, n)) < 0.7
    before = rng.integers(0, n + 1, g * a)
    got = set(zip(*(v.tolist() for v in _contacts(ego, agents, n, k, query, before))))
    hit = obb_overlap(
        np.stack([x, y], -1)[:, :, None],
        rear[:, :n, None, 2],
        2.4,
        1.0,
        np.moveaxis(agents.center[:, k:], 0, 1)[None],
        agents.yaw[:, k:].T[None],
        agents.half_length,
        agents.half_width,
    )
    keep = hit & agents.valid[:, k:].T[None] & query[:, :, None]
    keep &= np.arange(n)[None, :, None] < before.reshape(g, a)[:, None, :]
    want = set(zip(*(v.tolist() for v in np.nonzero(keep))))
    assert got == want and len(want) > 10


@pytest.mark.parametrize("seed", range(5))
def test_route_exceeds_is_distance_beyond_reach(seed):
    """The within / beyond raster answers exactly ``distance > reach``, for points scattered around the
    reach's edge on both sides of a route with sharp corners and long diagonal segments, and outside
    the window."""
    rng = np.random.default_rng(seed)
    route = np.cumsum(rng.normal(size=(12, 2)) * [8.0, 3.0], 0)
    index = build_route_distance(route, route.min(0) - 2.0, route.max(0) + 2.0, 0.5)
    k = rng.integers(0, len(route) - 1, 20000)
    along = route[k] + rng.uniform(0, 1, (20000, 1)) * (route[k + 1] - route[k])
    points = along + rng.normal(size=(20000, 2)) * rng.choice([0.3, 0.6, 3.0], (20000, 1))
    points[:200] = route.max(0) + rng.uniform(0.0, 5.0, (200, 2))
    beyond = index.distance(points) > 0.5
    assert 0.2 < beyond.mean() < 0.8
    np.testing.assert_array_equal(index.exceeds(points[:, 0], points[:, 1]), beyond)
