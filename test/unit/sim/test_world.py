"""Embedded world: scenario files, determinism per seed, map-frame conversion, route and collisions."""

import itertools

import numpy as np
import pytest

from wamdiff_ros.config import ConfigError
from wamdiff_ros.sim.roadnet import LaneMap
from wamdiff_ros.sim.scenarios import load_scenario, load_scenarios, scenario_from_dict
from wamdiff_ros.sim.world import World
from wamdiff_ros.types import COMMANDS


def _run(world: World, steps: int, accel=0.5, steer=0.0):
    frames = [world.frame()]
    for _ in range(steps):
        if world.done:
            break
        world.step(accel, steer)
        frames.append(world.frame())
    return frames


def _same(a, b):
    return (
        np.array_equal(a.ego.pose, b.ego.pose)
        and np.array_equal(a.agents.ids, b.agents.ids)
        and np.array_equal(a.agents.poses, b.agents.poses)
        and a.route_lane_ids == b.route_lane_ids
        and a.command == b.command
    )


def test_shipped_scenarios_load_with_disjoint_splits():
    scenarios = load_scenarios()
    kinds = {s.kind for s in scenarios}
    assert {"highway", "merge", "roundabout", "intersection", "stopped_vehicle", "cut_in", "lane_change"} <= kinds
    for s in scenarios:
        ranges = sorted(s.seeds.values())
        assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(ranges))
        assert s.split_of(s.seed_list("test")[0]) == "test"
        assert s.split_of(s.seed_list("closedloop")[0]) == "closedloop"


def test_overlapping_seed_ranges_are_rejected():
    bad = {
        "kind": "highway",
        "env_id": "highway-fast-v0",
        "seeds": {"train": [0, 10], "val": [5, 20], "test": [30, 40], "closedloop": [50, 60]},
    }
    with pytest.raises(ConfigError, match="overlap"):
        scenario_from_dict(bad, "bad")
    fresh_overlaps_test = {**bad["seeds"], "val": [10, 20], "closedloop": [35, 45]}
    with pytest.raises(ConfigError, match="'test' .* and 'closedloop' .* overlap"):
        scenario_from_dict({**bad, "seeds": fresh_overlaps_test}, "bad")
    three = {k: v for k, v in bad["seeds"].items() if k != "closedloop"}
    with pytest.raises(ConfigError, match="closedloop"):
        scenario_from_dict({**bad, "seeds": three}, "bad")
    with pytest.raises(ConfigError, match="kind"):
        scenario_from_dict({**bad, "kind": "parking"}, "bad")


@pytest.mark.parametrize("name", ["highway_dense", "intersection_left", "cut_in"])
def test_same_seed_same_frames_different_seed_differs(name):
    scenario = load_scenario(name)
    a = _run(World(scenario, 20000), 15)
    b = _run(World(scenario, 20000), 15)
    assert len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    c = _run(World(scenario, 20001), 15)
    assert not all(_same(x, y) for x, y in zip(a, c))


def test_reset_replays_the_episode_after_other_scenarios_ran():
    scenario = load_scenario("highway_medium")
    w = World(scenario, 20003)
    first = _run(w, 10)
    World(load_scenario("intersection_right"), 20003)  # intersection-v0 edits IDM class constants
    w.reset()
    again = _run(w, 10)
    assert all(_same(x, y) for x, y in zip(first, again))


def test_frames_are_in_the_map_frame():
    w = World(load_scenario("intersection_straight"), 20000)
    f = w.frame()
    # intersection-v0's ego enters from the south (screen y > 0) heading up the screen: map +y, yaw +90°.
    assert f.ego.pose[1] < 0 and f.ego.pose[2] == pytest.approx(np.pi / 2, abs=1e-6)
    assert f.ego.velocity[0] > 0 and abs(f.ego.velocity[1]) < 1e-6
    lm = LaneMap(w.lanes)
    lane_id, _, d = lm.locate(f.ego.pose)
    assert lane_id == f.route_lane_ids[0] and abs(d) < 0.5
    w.step(0.0, 0.3)  # positive steering turns left (counter-clockwise)
    w.step(0.0, 0.3)
    assert w.frame().ego.pose[2] > np.pi / 2 and w.frame().ego.yaw_rate > 0


def test_route_command_and_completion():
    w = World(load_scenario("intersection_left"), 20000)
    assert w.frame().command == "left" and "left" in w.frame().instruction.lower()
    lc = World(load_scenario("lane_change"), 20000)
    assert lc.frame().command in ("lane_change_left", "lane_change_right")
    assert all(f.command in COMMANDS for f in _run(lc, 5))
    hw = World(load_scenario("highway_sparse"), 20000)
    _run(hw, 20, accel=0.0)
    assert 0.0 < hw.completion < 1.0 and hw.route_progress == pytest.approx(hw.completion * hw.route_length)


def test_driving_into_a_stopped_vehicle_is_an_at_fault_collision():
    w = World(load_scenario("stopped_vehicle"), 20000)
    _run(w, 400, accel=0.0)
    assert w.done and w.reason == "collision"
    assert w.collision.at_fault and w.collision.kind == "front"


def test_step_rejects_non_finite_controls():
    w = World(load_scenario("merge"), 20000)
    with pytest.raises(ValueError, match="finite"):
        w.step(float("nan"), 0.0)
