"""Closed loop in the embedded world: the episode runner's contract, and the expert completing short episodes."""

import dataclasses

import numpy as np
import pytest

from wamdiff_ros.sim.episode import EpisodeMetrics, run_episode, score_log, summarize
from wamdiff_ros.sim.expert import Expert
from wamdiff_ros.sim.scenarios import load_scenario
from wamdiff_ros.sim.world import World
from wamdiff_ros.types import PlanResult, Trajectory, TrajectorySpec


class Cruise:
    """A driver that always plans straight ahead at 15 m/s."""

    def reset(self):
        self.calls = 0

    def plan(self, frame, lanes, images=None):
        self.calls += 1
        t = TrajectorySpec().times
        return PlanResult(Trajectory(np.stack([15 * t, 0 * t, 0 * t], 1)))


def short(name: str, duration: float, length: float):
    s = load_scenario(name)
    return dataclasses.replace(s, duration=duration, route=dataclasses.replace(s.route, length_m=length))


def test_runner_calls_back_every_tick_and_reports_metrics():
    world = World(short("highway_sparse", 2.0, 1000.0), 20000)
    ticks = []
    driver = Cruise()
    res = run_episode(world, driver, on_tick=lambda f, p, im: ticks.append((f.stamp, p, im)), score_every=0)
    m = res.metrics
    assert m.reason == "timeout" and m.steps == 20 and m.duration == pytest.approx(2.0)
    assert len(res.frames) == len(res.plans) == len(ticks) == driver.calls == 21
    assert [t for t, _, _ in ticks] == [f.stamp for f in res.frames] and ticks[0][2] is None
    assert 0 < m.route_completion < 1 and np.isnan(m.mean_pdms)
    s = summarize([m, dataclasses.replace(m, collision=True, at_fault_collision=True)])
    assert s["all"]["episodes"] == 2 and s["all"]["at_fault_collision_rate"] == 0.5
    assert isinstance(m, EpisodeMetrics)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), [("highway_medium", 20000), ("cut_in", 20001)])
def test_expert_completes_a_short_highway_episode_without_collision(name, seed):
    world = World(short(name, 15.0, 220.0), seed)
    res = run_episode(world, Expert(), score_every=5)
    m = res.metrics
    assert not m.collision and m.reason == "route_complete" and m.route_completion == pytest.approx(1.0)
    assert m.scored >= 3 and m.mean_pdms > 0.7


def test_ticks_before_an_at_fault_collision_score_zero_instead_of_going_unscored():
    res = run_episode(World(load_scenario("stopped_vehicle"), 20000), Cruise(), score_every=5)
    m = res.metrics
    assert m.reason == "collision" and m.at_fault_collision and m.duration < 2 * TrajectorySpec().horizon
    full_horizon, _ = score_log(res.frames, res.plans, res.lanes, TrajectorySpec(), 5)  # as if it had timed out
    assert m.scored == len(range(0, len(res.frames), 5)) > len(full_horizon) >= 1
    assert m.mean_pdms == pytest.approx(sum(full_horizon) / m.scored)  # the rest count as 0
    assert m.mean_pdms < min(full_horizon)
    assert m.driving_score == pytest.approx(100 * m.route_completion * 0.60)  # the leaderboard's vehicle collision


class Swerve(Cruise):
    """A driver that always plans a hard right turn (off the road within 3 s)."""

    def plan(self, frame, lanes, images=None):
        t = TrajectorySpec().times
        return PlanResult(Trajectory(np.stack([15 * t, -2 * t * t, 0 * t], 1)))


def test_an_episode_that_leaves_the_road_within_its_first_horizon_scores_zero_not_nan():
    res = run_episode(World(short("highway_sparse", 20.0, 1000.0), 20000), Swerve(), score_every=5)
    m = res.metrics
    assert m.reason == "off_road" and not m.collision and m.duration < TrajectorySpec().horizon
    assert m.scored == len(range(0, len(res.frames), 5)) and m.mean_pdms == 0.0
    assert m.driving_score == pytest.approx(100 * m.route_completion)  # leaving the route: no penalty
