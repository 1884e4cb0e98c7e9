"""Hand-built scenes for every NAVSIM sub-metric, each at both sides of its threshold.

Conventions of the scenes (test/unit/helpers/scoring.py): the ego's rear axle starts at the origin
heading +x; its box is 5 m × 2 m with the centre 1.5 m ahead of the rear axle, so the front bumper is
4 m and the rear bumper 1 m from the rear axle. A straight constant-speed plan whose speed equals the
ego's is tracked exactly (fitted speed = v, zero curvature, zero LQR command), so at time t the rear axle
is at x = v·t. Lanes are 4 m wide (edges at y ± 2).
"""

from __future__ import annotations

import numpy as np
import pytest

from unit.helpers.scoring import SPEC, agent, scene, straight, straight_lane
from wamdiff_ros.scoring import ScorerConfig, score
from wamdiff_ros.scoring.pdms import normalise_progress
from wamdiff_ros.types import AgentType

FAST = ScorerConfig(use_reference=False, human_filter=False)


def test_straight_plan_is_tracked_exactly():
    """v = 10 m/s for 4 s: the rear axle ends at x = 40 m with speed 10 m/s, no lateral motion."""
    r = score(straight(10.0), scene([straight_lane(0, 0.0)]), ScorerConfig(keep_states=True, human_filter=False))
    assert r.states.shape == (1, 41, 9)
    np.testing.assert_allclose(r.states[0, -1, :4], [40.0, 0.0, 0.0, 10.0], atol=1e-9)
    assert r.progress[0] == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("rear", "kind", "expected"),
    [(43.9, AgentType.VEHICLE, 0.0), (43.9, AgentType.STATIC, 0.5), (44.1, AgentType.VEHICLE, 1.0)],
)
def test_nc_stopped_obstacle_ahead(rear, kind, expected):
    """Ego at 10 m/s: front bumper at 10·t + 4, so 44.0 m at t = 4 s. A stopped box whose rear is at 43.9 m
    is hit at the last step (at fault: track stopped) → NC 0 for a vehicle, 0.5 for a static object; at
    44.1 m it is never touched → 1."""
    sc = scene([straight_lane(0, 0.0)], agents=[agent(rear + 2.0, 0.0, kind=kind)])
    r = score(straight(10.0), sc, FAST)
    assert r.nc[0] == expected
    if expected < 1:
        assert r.collision_time[0] == pytest.approx(4.0)


def test_nc_rear_ended_is_not_at_fault():
    """Ego at 5 m/s, a car 12 m behind at 12 m/s catches up (closing 7 m/s over an 8 m gap between its
    front at −10 m and the ego's rear bumper at −1 m) about 1.3 s in. The car is behind the ego (bearing
    180° > 150°) → ACTIVE_REAR, not at fault → NC = 1. TTC is 0: as in NAVSIM the bearing is taken from
    the ego's rear axle at t to the car at t + 0.9 s, which is by then ahead of that point."""
    sc = scene([straight_lane(0, 0.0)], speed=5.0, agents=[agent(-12.0, 0.0, vx=12.0)])
    r = score(straight(5.0), sc, FAST)
    assert r.nc[0] == 1.0
    assert r.ttc[0] == 0.0


def test_nc_stopped_ego_is_not_at_fault():
    """Ego standing still, an oncoming car drives into it: ego speed ≤ 0.05 m/s → STOPPED_EGO, not at fault
    → NC 1; TTC is not evaluated below 5e-3 m/s → 1."""
    sc = scene([straight_lane(0, 0.0, width=20.0)], speed=0.0, agents=[agent(30.0, 0.0, yaw=np.pi, vx=-10.0)])
    r = score(straight(0.0), sc, FAST)
    assert (r.nc[0], r.ttc[0]) == (1.0, 1.0)


def test_nc_moving_lead_hit_by_front_bumper():
    """Lead car moving at 2 m/s, rear 15 m ahead of the rear axle (11 m gap) while the ego does 10 m/s:
    contact after ≈ 1.4 s, front bumper against the lead's rear (ACTIVE_FRONT) → NC 0 (vehicle)."""
    sc = scene([straight_lane(0, 0.0)], agents=[agent(17.0, 0.0, vx=2.0)])
    r = score(straight(10.0), sc, FAST)
    assert r.nc[0] == 0.0
    assert 1.2 <= r.collision_time[0] <= 1.5


def test_nc_ignores_invalid_agents():
    """The same stopped car as in the NC-0 case but unobserved (valid = False) is not a collision."""
    sc = scene([straight_lane(0, 0.0)], agents=[agent(45.9, 0.0, valid=np.zeros(41, bool))])
    assert score(straight(10.0), sc, FAST).nc[0] == 1.0


def _brake_late() -> np.ndarray:
    """10 m/s for 2 s, then −3 m/s² to a stop (ideal rear-axle stop at 28.3 m)."""
    t = SPEC.times
    tb = np.clip(t - 2.0, 0.0, 10.0 / 6.0)
    x = 10.0 * np.minimum(t, 2.0) + 10.0 * tb - 3.0 * tb**2
    return np.stack([x, 0 * t, 0 * t], 1)


@pytest.mark.parametrize(("rear", "nc", "ttc"), [(33.0, 1.0, 0.0), (34.0, 1.0, 1.0), (32.0, 0.0, 0.0)])
def test_ttc_projection_window(rear, nc, ttc):
    """Plan: cruise, then brake late. Simulated, the front bumper stops at ≈ 32.4 m while the largest
    constant-velocity projection front(t) + 0.9 s·v(t) over the checked steps (t ≤ 3.1 s) is ≈ 33.5 m.
    A stopped car with its rear at 33 m is never hit (NC 1) but is inside a projection → TTC 0; at 34 m
    it is outside both → TTC 1; at 32 m it is hit → NC 0 and TTC 0."""
    sc = scene([straight_lane(0, 0.0)], agents=[agent(rear + 2.0, 0.0)])
    r = score(_brake_late(), sc, FAST)
    assert (r.nc[0], r.ttc[0]) == (nc, ttc)


@pytest.mark.parametrize(
    ("y0", "resolution", "expected"), [(0.85, 0.1, 1.0), (1.15, 0.1, 0.0), (0.97, 0.02, 1.0), (1.03, 0.02, 0.0)]
)
def test_dac_lane_edge(y0, resolution, expected):
    """Ego driving straight with its rear axle at lateral offset y0 in a 4 m lane: its left corners are
    at y0 + 1, inside the edge at y = 2 for y0 < 1 (centimetres from the edge:
    test_navsim_rules.py)."""
    sc = scene([straight_lane(0, 0.0)], pose=(0.0, y0, 0.0))
    r = score(straight(10.0), sc, ScorerConfig(use_reference=False, human_filter=False, raster_resolution=resolution))
    assert r.dac[0] == expected


@pytest.mark.parametrize(
    ("in_intersection", "widening", "y0", "expected"),
    [(True, 2.0, 1.85, 1.0), (True, 2.0, 2.15, 0.0), (True, 0.0, 1.15, 0.0), (False, 2.0, 1.15, 0.0)],
)
def test_dac_junction_interior(in_intersection, widening, y0, expected):
    """A junction lane counts ``junction_widening`` wider (1 m more each side at 2 m): left corners at
    y0 + 1 stay inside the widened edge at y = 3 for y0 < 2. Ordinary lanes and a zero widening keep
    the painted 4 m (the edge at y = 2)."""
    sc = scene([straight_lane(0, 0.0, in_intersection=in_intersection)], pose=(0.0, y0, 0.0))
    config = ScorerConfig(use_reference=False, human_filter=False, junction_widening=widening)
    assert score(straight(10.0), sc, config).dac[0] == expected


def test_junction_widening_rejects_negative():
    with pytest.raises(ValueError, match="junction_widening"):
        ScorerConfig(junction_widening=-1.0)


@pytest.mark.parametrize(("speed", "expected"), [(1.8, 1.0), (1.85, 0.5), (5.4, 0.5), (5.5, 0.0)])
def test_ddc_thresholds(speed, expected):
    """Ego driving east inside a west-bound lane (lane direction differs by 180° > 90°). NAVSIM sums the
    per-step displacements of the 11 entries t−10…t, i.e. 1.1 s of motion: 1.1·v m. Thresholds: < 2 m → 1,
    < 6 m → 0.5, else 0. So v = 1.8 → 1.98 m → 1; 1.85 → 2.035 → 0.5; 5.4 → 5.94 → 0.5; 5.5 → 6.05 → 0."""
    lanes = [straight_lane(0, 0.0), straight_lane(1, 4.0, x0=300.0, x1=-50.0)]
    sc = scene(lanes, speed=speed, pose=(0.0, 4.0, 0.0))
    r = score(straight(speed), sc, FAST)
    assert r.oncoming_progress[0] == pytest.approx(1.1 * speed)
    assert r.ddc[0] == expected


def test_ddc_ignores_same_direction_lanes():
    """The same drive in an east-bound lane has no oncoming progress → DDC 1."""
    r = score(straight(5.5), scene([straight_lane(0, 0.0)], speed=5.5), FAST)
    assert (r.oncoming_progress[0], r.ddc[0]) == (0.0, 1.0)


def _light_scene(speed: float, state: int):
    lanes = [
        straight_lane(0, 0.0, x0=-50.0, x1=20.0, successors=(1,)),
        straight_lane(1, 0.0, x0=20.0, x1=40.0, in_intersection=True, successors=(2,)),
        straight_lane(2, 0.0, x0=40.0, x1=300.0),
    ]
    return scene(lanes, speed=speed, route=[0, 1, 2], lights={1: np.full(41, state)})


@pytest.mark.parametrize(("speed", "state", "expected"), [(3.9875, 2, 1.0), (4.0125, 2, 0.0), (4.0125, 0, 1.0)])
def test_tlc_red_light_lane(speed, state, expected):
    """The junction lane (x ≥ 20 m) is governed by a light. Front bumper after 4 s: 4·v + 4 m →
    19.95 m at v = 3.9875 (stays out) and 20.05 m at v = 4.0125 (enters). RED → TLC 0 only when it enters;
    GREEN → 1."""
    r = score(straight(speed), _light_scene(speed, state), FAST)
    assert r.tlc[0] == expected


@pytest.mark.parametrize(
    ("offset", "lane_end", "expected"), [(0.4, 300.0, 1.0), (0.6, 300.0, 0.0), (0.6, 20.0, 1.0), (0.6, 21.0, 0.0)]
)
def test_lk_deviation_and_window(offset, lane_end, expected):
    """Box centre 0.4 m / 0.6 m beside the lane centre line (limit 0.5 m) for the whole drive → LK 1 / 0.
    With the lane turning into an intersection lane at x = lane_end, the centre (x = 1.5 + t m at step t,
    10 m/s) counts only at steps before it: lane_end = 20 → steps 0…18 = 19 consecutive steps (< 20 =
    2 s / 0.1 s) → LK 1; lane_end = 21 → 20 steps → LK 0. Intersection steps neither count nor reset."""
    lanes = [straight_lane(0, 0.0, x1=lane_end)]
    if lane_end < 300.0:
        lanes.append(straight_lane(1, 0.0, x0=lane_end, x1=300.0, in_intersection=True))
    sc = scene(lanes, pose=(0.0, offset, 0.0), route=[lane.lane_id for lane in lanes])
    assert score(straight(10.0), sc, FAST).lk[0] == expected


@pytest.mark.parametrize(("accel", "expected"), [(-1.0, 1.0), (-6.0, 0.0)])
def test_comfort_longitudinal_deceleration(accel, expected):
    """Braking from 10 m/s at 1 m/s² stays inside the bound (−4.05 m/s²) → HC = C = 1; at 6 m/s² the
    tracked deceleration exceeds it → 0."""
    r = score(straight(10.0, accel=accel), scene([straight_lane(0, 0.0)]), FAST)
    assert (r.hc[0], r.c[0]) == (expected, expected)


def _arc(speed: float, yaw_rate: float) -> np.ndarray:
    t = SPEC.times
    yaw = yaw_rate * t
    radius = speed / yaw_rate
    return np.stack([radius * np.sin(yaw), radius * (1 - np.cos(yaw)), yaw], 1)


@pytest.mark.parametrize(("yaw_rate", "expected"), [(0.5, 1.0), (1.2, 0.0)])
def test_comfort_yaw_rate(yaw_rate, expected):
    """A circular arc at 5 m/s started with the matching steering angle: yaw rate 0.5 rad/s is inside the
    0.95 rad/s bound → HC 1; 1.2 rad/s is outside → HC 0 (wide lane so only comfort is at stake)."""
    sc = scene([straight_lane(0, 0.0, width=80.0)], speed=5.0)
    sc.ego.yaw_rate = yaw_rate
    r = score(_arc(5.0, yaw_rate), sc, FAST)
    assert r.hc[0] == expected


def test_comfort_lateral_acceleration_mode():
    """A 16 m/s arc of 50 m radius: lateral acceleration v²/R = 5.12 m/s² > 4.89, yaw rate 0.32 rad/s.
    NAVSIM's bicycle stores no lateral acceleration, so its HC passes; the physical mode fails it."""
    sc = scene([straight_lane(0, 0.0, width=200.0)], speed=16.0)
    sc.ego.yaw_rate = 16.0 / 50.0
    plan = _arc(16.0, 16.0 / 50.0)
    assert score(plan, sc, FAST).hc[0] == 1.0
    phys = ScorerConfig(use_reference=False, human_filter=False, physical_lateral_accel=True)
    assert score(plan, sc, phys).hc[0] == 0.0


def test_ep_normalisation_rules():
    """normalise_progress: masked progress over the best; the best ≤ 5 m → 1 (0 where masked out).
    [10, 20, 40] m → [0.25, 0.5, 1]; with a 80 m reference → [0.125, 0.25, 0.5]; [2, 5] m (best exactly
    5 m) → [1, 1]; [2, 5.2] → [2/5.2, 1]; a multiplicative 0 gives 0 in either regime."""
    p = np.array([10.0, 20.0, 40.0])
    np.testing.assert_allclose(normalise_progress(p, np.ones(3), 0.0, batch=True), [0.25, 0.5, 1.0])
    np.testing.assert_allclose(normalise_progress(p, np.ones(3), 80.0, batch=True), [0.125, 0.25, 0.5])
    np.testing.assert_allclose(normalise_progress(p, np.ones(3), 30.0, batch=False), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(normalise_progress(np.array([2.0, 5.0]), np.ones(2), 0.0, True), [1.0, 1.0])
    np.testing.assert_allclose(normalise_progress(np.array([2.0, 5.2]), np.ones(2), 0.0, True), [2 / 5.2, 1.0])
    np.testing.assert_allclose(normalise_progress(np.array([2.0, 5.0]), np.array([0.0, 1.0]), 0.0, True), [0.0, 1.0])
    np.testing.assert_allclose(normalise_progress(p, np.array([1.0, 0.5, 0.0]), 0.0, True), [1.0, 1.0, 0.0])


def test_ep_in_scoring_uses_raw_progress_and_reference():
    """Batch mode without reference: EP = progress / max progress. Reference mode: each candidate is
    divided by max(its own, the PDM-Closed reference's) masked progress, whatever the rest of the batch."""
    sc = scene([straight_lane(0, 0.0)])
    plans = np.stack([straight(v) for v in (6.0, 10.0, 14.0)])
    r = score(plans, sc, ScorerConfig(use_reference=False, ep_normalization="batch", human_filter=False))
    np.testing.assert_allclose(r.ep, r.progress / r.progress.max())
    r = score(plans, sc, ScorerConfig(human_filter=False))
    ref = r.reference_progress
    assert ref > 5.0
    np.testing.assert_allclose(r.ep, r.progress / np.maximum(r.progress, ref))


def test_ep_small_progress_rule_in_scoring():
    """An ego at rest whose plans creep 0.5 m and 1 m, without reference: best progress ≤ 5 m → EP 1."""
    sc = scene([straight_lane(0, 0.0)], speed=0.0)
    plans = np.stack([straight(0.0, accel=a) for a in (0.0625, 0.125)])
    r = score(plans, sc, ScorerConfig(use_reference=False, human_filter=False))
    assert r.progress.max() <= 5.0
    np.testing.assert_array_equal(r.ep, [1.0, 1.0])


def test_ec_against_previous_plan():
    """Previous frame (0.5 s earlier) planned a 10 m/s cruise. Cruising on → identical dynamics → EC 1.
    Braking at 3 m/s² now differs by ~3 m/s² RMS in acceleration (> 0.7) → EC 0. No previous plan, or
    frames ≥ 0.55 s apart → EC 1."""
    plans = np.stack([straight(10.0), straight(10.0, accel=-3.0)])
    sc = scene([straight_lane(0, 0.0)], previous_plan=straight(10.0), previous_plan_offset=0.5)
    np.testing.assert_array_equal(score(plans, sc, FAST).ec, [1.0, 0.0])
    sc = scene([straight_lane(0, 0.0)], previous_plan=straight(10.0), previous_plan_offset=0.6)
    np.testing.assert_array_equal(score(plans, sc, FAST).ec, [1.0, 1.0])
    np.testing.assert_array_equal(score(plans, scene([straight_lane(0, 0.0)]), FAST).ec, [1.0, 1.0])


def test_human_filter_exempts_what_the_human_also_fails():
    """The human drives 6 m to the left, off the 4 m lane (human DAC 0). A candidate that does the same
    keeps DAC 0 as its own score but the EPDMS filter counts DAC as 1, so EPDMS > 0; PDMS (no filter) is 0."""
    human = straight(10.0, y=0.0)
    human[:, 1] = np.linspace(0.75, 6.0, 8)
    sc = scene([straight_lane(0, 0.0)], human=human)
    r = score(human, sc, ScorerConfig(use_reference=False))
    assert r.human["dac"] == 0.0
    assert r.dac[0] == 0.0 and r.filtered["dac"][0] == 1.0
    assert r.pdms[0] == 0.0 and r.epdms[0] > 0.0
    r_off = score(human, sc, ScorerConfig(use_reference=False, human_filter=False))
    assert r_off.epdms[0] == 0.0


def test_totals_follow_navsim_formulas():
    """PDMS = NC·DAC·(5·TTC + 5·EP + 2·C)/12 (with PDMS's EP); EPDMS = Π(NC, DAC, DDC, TLC)·(5·EP + 5·TTC +
    2·LK + 2·HC + 2·EC)/16 on the filtered sub-scores; row() / mean() carry NAVSIM's names."""
    sc = scene([straight_lane(0, 0.0), straight_lane(1, 4.0)], agents=[agent(30.0, 0.0, vx=3.0)])
    rng = np.random.default_rng(0)
    plans = np.stack([straight(v, y=y) for v, y in zip(rng.uniform(0, 14, 12), rng.uniform(-3, 6, 12))])
    r = score(plans, sc)
    np.testing.assert_allclose(r.pdms, r.nc * r.dac * (5 * r.ttc + 5 * r.ep_pdms + 2 * r.c) / 12)
    f = r.filtered
    expected = (
        f["nc"]
        * f["dac"]
        * f["ddc"]
        * f["tlc"]
        * (5 * f["ep"] + 5 * f["ttc"] + 2 * f["lk"] + 2 * f["hc"] + 2 * r.ec)
        / 16
    )
    np.testing.assert_allclose(r.epdms, expected)
    row = r.row(3)
    assert list(row) == ["NC", "DAC", "DDC", "TLC", "EP", "TTC", "LK", "HC", "EC", "C", "PDMS", "EPDMS"]
    assert r.mean()["PDMS"] == pytest.approx(r.pdms.mean())
    assert len(r) == 12


def test_bad_input_is_rejected():
    sc = scene([straight_lane(0, 0.0)])
    with pytest.raises(ValueError, match="trajectories"):
        score(np.zeros((2, 5, 3)), sc)
    with pytest.raises(ValueError, match=r"trajectories: expected shape \(G >= 1, 8, 3\).*got \(0, 8, 3\)"):
        score(np.zeros((0, 8, 3)), sc)
    bad = np.stack([straight(10.0), straight(10.0)])
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"candidates \[1\]"):
        score(bad, sc)
    with pytest.raises(ValueError, match="ep_normalization"):
        ScorerConfig(ep_normalization="best")
