"""The scorer's rules checked against NAVSIM's code (navsim ``pdm_scorer.py``, ``pdm_comfort_metrics.py``,
``pdm_array_representation.py``, ``pdm_scorer_utils.py``); docs/scoring.md maps each rule to its test.

Scene conventions as in test_metrics.py: ego rear axle at the origin heading +x, box 5 m × 2 m
with its centre 1.5 m ahead of the rear axle, lanes 4 m wide; a straight plan at the ego's own speed is
tracked exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from unit.helpers.scoring import scene, straight, straight_lane
from wamdiff_ros.control.bicycle import STATE_DIM, StateIndex
from wamdiff_ros.scoring import ScorerConfig, score
from wamdiff_ros.scoring.collision import AgentTrack, EgoTrack, no_at_fault_collision
from wamdiff_ros.scoring.comfort import body_accelerations, savgol_operator
from wamdiff_ros.scoring.drivable import build_raster
from wamdiff_ros.scoring.pdms import normalise_progress, normalise_progress_v2
from wamdiff_ros.scoring.route_distance import build_route_distance
from wamdiff_ros.types import AgentType, Lane

FAST = ScorerConfig(use_reference=False, human_filter=False)


def test_ep_v2_divides_raw_progress_by_the_best_masked():
    """NAVSIM v2: EP = clip(raw / max(raw · multiplicative), 0, 1) when that best exceeds 5 m, else 1 for
    every candidate. A masked-out candidate keeps its raw ratio (v1.1 gives it 0); one that out-drives
    the best masked progress is clipped to 1."""
    p = np.array([10.0, 20.0, 40.0])
    multi = np.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(normalise_progress_v2(p, multi, 0.0, batch=True), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalise_progress(p, multi, 0.0, batch=True), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(normalise_progress_v2(p, np.array([1.0, 0.5, 1.0]), 80.0, True), [0.125, 0.25, 0.5])
    np.testing.assert_allclose(normalise_progress_v2(p, np.ones(3), 30.0, batch=False), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_array_equal(normalise_progress_v2(np.array([2.0, 9.0]), np.array([1.0, 0.0]), 0.0, True), 1.0)
    np.testing.assert_allclose(normalise_progress_v2(np.array([2.0, 5.2]), np.ones(2), 0.0, True), [2 / 5.2, 1.0])


def test_ep_versions_in_scoring():
    """A plan that leaves the road (DAC 0) keeps its v2 EP (raw / best masked) but gets v1.1 EP 0; the
    on-road plans agree under both rules."""
    sc = scene([straight_lane(0, 0.0)])
    plans = np.stack([straight(10.0), straight(6.0), straight(10.0, y=6.0)])
    r = score(plans, sc, ScorerConfig(use_reference=False, ep_normalization="batch", human_filter=False))
    assert r.dac.tolist() == [1.0, 1.0, 0.0]
    best = r.progress[:2].max()
    np.testing.assert_allclose(r.ep, np.clip(r.progress / best, 0.0, 1.0))
    np.testing.assert_allclose(r.ep_pdms, [r.progress[0] / best, r.progress[1] / best, 0.0])


def _states(yaw_rate: float, yaw_accel: float, accel: float = 0.0) -> np.ndarray:
    s = np.zeros((1, 5, STATE_DIM))
    s[..., StateIndex.V] = 10.0
    s[..., StateIndex.ACCEL] = accel
    s[..., StateIndex.YAW_RATE] = yaw_rate
    s[..., StateIndex.YAW_ACCEL] = yaw_accel
    return s


def test_history_comfort_centre_acceleration_is_longitudinal():
    """NAVSIM shifts the rear-axle acceleration to the box centre with the displacement [d, 0]:
    a_c = a + d·ω² + d·α, both terms on the longitudinal axis, none on the lateral one (d = 1.5 m)."""
    _, _, lon, lat = body_accelerations(_states(0.4, 0.8, accel=1.0), 1.5, physical=False)
    np.testing.assert_allclose(lon, 1.0 + 1.5 * 0.4**2 + 1.5 * 0.8)
    np.testing.assert_allclose(lat, 0.0)
    _, ay, lon, lat = body_accelerations(_states(0.4, 0.8, accel=1.0), 1.5, physical=True)
    np.testing.assert_allclose(lon, 1.0 - 1.5 * 0.4**2)
    np.testing.assert_allclose(lat, ay + 1.5 * 0.8)


@pytest.mark.parametrize(("corner_y", "expected"), [(1.98, 1.0), (2.02, 0.0), (1.999, 1.0), (2.001, 0.0)])
@pytest.mark.parametrize("resolution", [0.1, 0.5])
def test_dac_is_exact_at_the_road_edge(corner_y, expected, resolution):
    """Left corners at ``corner_y`` beside the edge at y = 2: 2 cm (and 1 mm) inside → DAC 1, outside
    → DAC 0, whatever the raster's cell size."""
    sc = scene([straight_lane(0, 0.0)], pose=(0.0, corner_y - 1.0, 0.0))
    config = ScorerConfig(use_reference=False, human_filter=False, raster_resolution=resolution)
    assert score(straight(10.0), sc, config).dac[0] == expected


def _inside_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Brute-force even-odd test against the whole lane polygon (independent of the scorer's quads)."""
    inside = np.zeros(len(points), bool)
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        cross = (a[1] > points[:, 1]) != (b[1] > points[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x = a[0] + (points[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        inside ^= cross & (points[:, 0] < x)
    return inside


def test_drivable_matches_lane_polygons_on_curves():
    """Points scattered over a curved lane, a straight lane and a widened junction lane: the raster's
    answer equals an exact polygon test everywhere, including within a cell of every edge."""
    rng = np.random.default_rng(3)
    s = np.linspace(0.0, 60.0, 31)
    arc = np.stack([30 * np.sin(s / 30), 30 * (1 - np.cos(s / 30))], 1)
    lanes = [
        Lane(0, arc, 3.5),
        Lane(1, np.stack([np.linspace(-10, 50, 31), np.full(31, -8.0)], 1), 3.0),
        Lane(2, np.stack([np.full(21, 20.0), np.linspace(-20, 20, 21)], 1), 3.0, in_intersection=True),
    ]
    raster = build_raster(lanes, np.zeros(2), 80.0, 0.1, junction_widening=1.0)
    polys = []
    for lane in lanes:
        left, right = (Lane(2, lane.centerline, lane.width + 1.0) if lane.in_intersection else lane).boundaries
        polys.append(np.concatenate([left, right[::-1]]))
    edges = np.concatenate([np.concatenate(lane.boundaries) for lane in lanes[:2]])
    near = edges[rng.integers(0, len(edges), 4000)] + rng.normal(0.0, 0.05, (4000, 2))
    points = np.concatenate([near, rng.uniform([-15, -25], [60, 35], (4000, 2))])
    expected = np.any([_inside_polygon(points, p) for p in polys], axis=0)
    got = raster.drivable(points[:, 0], points[:, 1])
    flat, inside = raster.locate(near[:, 0], near[:, 1])
    assert inside.all() and raster.edge_band.ravel()[flat].mean() > 0.9
    np.testing.assert_array_equal(got, expected)


def _ego(steps: int = 10) -> EgoTrack:
    """Ego at 10 m/s along +x: rear axle at x = t m at step t, centre 1.5 m ahead, 5 m × 2 m."""
    x = np.arange(steps, dtype=float)
    rear = np.stack([x, np.zeros(steps), np.zeros(steps)], -1)[None]
    center = rear[..., :2] + [1.5, 0.0]
    return EgoTrack(
        rear, center, np.full((1, steps), 10.0), 2.5, 1.0, np.zeros((1, steps), bool), np.zeros((1, steps), bool)
    )


def _side_agent(speeds: np.ndarray, steps: int = 10) -> AgentTrack:
    """A 2 m × 2 m agent valid from step 2, clear of the ego's left side until step 5, then overlapping it
    by 0.1 m beside the ego's centre (bearing ~54° from the rear axle: not behind, clear of the bumper)."""
    center = np.zeros((1, steps, 2))
    center[0, :, 0] = 6.5
    center[0, :, 1] = np.where(np.arange(steps) < 5, 3.0, 1.9)
    valid = (np.arange(steps) >= 2)[None]
    return AgentTrack(
        center, np.zeros((1, steps)), speeds[None], valid, np.ones(1), np.ones(1), np.array([int(AgentType.VEHICLE)])
    )


@pytest.mark.parametrize(
    ("first_speed", "contact_speed", "expected"),
    [(0.0, 3.0, 0.0), (3.0, 0.0, 1.0), (3.0, 3.0, 1.0), (0.0, 0.0, 0.0)],
)
def test_nc_stopped_state_is_read_when_the_track_first_appears(first_speed, contact_speed, expected):
    """A lateral contact (ego in one lane, not its front bumper) is at fault only with a stopped track,
    and NAVSIM takes the track's state from its first appearance (step 2 here), not from the contact
    (step 5): stopped then moving → NC 0; moving then stopped → NC 1."""
    speeds = np.full(10, contact_speed)
    speeds[:5] = first_speed
    speeds[:2] = 99.0
    nc, t_hit = no_at_fault_collision(_ego(), _side_agent(speeds))
    assert nc[0] == expected
    assert (t_hit[0] == 5.0) == (expected == 0.0)


def test_lk_measures_the_route_centre_line():
    """Driving the centre of a same-direction lane 4 m beside the route lane fails LK (NAVSIM measures the
    route's centre line); the same drive with that lane on the route passes."""
    lanes = [straight_lane(0, 0.0), straight_lane(1, 4.0)]
    off_route = scene(lanes, pose=(0.0, 4.0, 0.0), route=[0])
    on_route = scene(lanes, pose=(0.0, 4.0, 0.0), route=[1])
    assert score(straight(10.0), off_route, FAST).lk[0] == 0.0
    assert score(straight(10.0), on_route, FAST).lk[0] == 1.0


def test_route_distance_is_exact_within_reach():
    """Distances to a polyline with a corner agree with a brute-force point-to-segment minimum wherever
    either is within the reach; beyond it the index may answer inf but never less than the reach."""
    rng = np.random.default_rng(0)
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.5, 0.2], [20.0, 8.0], [20.0, 30.0]])
    index = build_route_distance(route, np.array([-5.0, -5.0]), np.array([30.0, 35.0]), 0.5)
    pts = route[rng.integers(0, len(route) - 1, 5000)] + rng.uniform(-1.0, 1.0, (5000, 2))
    pts += rng.uniform(0, 1, (5000, 1)) * (route[1:] - route[:-1])[rng.integers(0, len(route) - 1, 5000)]
    a, b = route[:-1], route[1:]
    t = np.clip((((pts[:, None] - a) * (b - a)).sum(-1)) / ((b - a) ** 2).sum(-1), 0, 1)
    brute = np.linalg.norm(pts[:, None] - (a + t[..., None] * (b - a)), axis=-1).min(1)
    got = index.distance(pts)
    near = brute <= 0.5
    assert near.sum() > 500
    np.testing.assert_allclose(got[near], brute[near], atol=1e-12)
    assert (got[~near] > 0.5).all()


@pytest.mark.parametrize(
    ("n", "window", "order", "deriv"),
    [
        (41, 8, 2, 0),
        (41, 15, 2, 1),
        (41, 5, 2, 1),
        (41, 5, 3, 2),
        (41, 5, 2, 2),
        (41, 41, 2, 0),
        (6, 8, 2, 0),
        (10, 15, 2, 1),
    ],
)
def test_savgol_matches_scipy(n, window, order, deriv):
    """The filters (NAVSIM's windows and orders, including the even window 8 and windows clipped to the
    series length) equal scipy.signal.savgol_filter (mode "interp", delta 0.1 s) to 1e-12."""
    signal = pytest.importorskip(
        "scipy.signal", reason="scipy (a test dependency, requirements/dev.txt) is not installed"
    )
    rng = np.random.default_rng(n + window)
    y = rng.normal(0.0, 3.0, (4, n))
    w = min(window, n)
    expected = signal.savgol_filter(y, w, order, deriv=deriv, delta=0.1, axis=-1)
    got = y @ savgol_operator(n, window, order, deriv, 0.1).T
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * max(1.0, np.abs(expected).max()))
