"""LoopDriver: a planner drives the embedded world through the planner node's loop, fed as the sim bridge
feeds the node (images, camera_info, odometry, command, stamps), with the node's fallback."""

import numpy as np
import pytest

from wamdiff_ros.data.bag import START_TIME_NS
from wamdiff_ros.evaluation.loop_driver import LoopDriver
from wamdiff_ros.models.config import tiny_rig
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.planning.loop import LoopConfig
from wamdiff_ros.rig import Rig
from wamdiff_ros.sim.episode import run_episode
from wamdiff_ros.sim.renderer import shared_renderer
from wamdiff_ros.sim.scenarios import load_scenario
from wamdiff_ros.sim.world import World

RIG = Rig.from_dict(tiny_rig())


class Recording(ConstantVelocityPlanner):
    """Constant velocity with an ego history, keeping what it was given; raises from plan ``fail_from`` on."""

    history = 3

    def __init__(self, fail_from: int | None = None):
        super().__init__(RIG)
        self.fail_from = fail_from
        self.seen = []

    def plan(self, obs, budget_ms=None):
        self.seen.append((obs, budget_ms))
        if self.fail_from is not None and len(self.seen) > self.fail_from:
            raise RuntimeError("model diverged")
        return super().plan(obs, budget_ms)


def drive(planner, seconds: float, **kw):
    world = World(load_scenario("highway_sparse").with_duration_cap(seconds), 30000)
    try:
        driver = LoopDriver(planner, LoopConfig(budget_ms=None), **kw)
        frames = []
        result = run_episode(
            world,
            driver,
            renderer=shared_renderer(RIG, world.lanes),
            score_every=0,
            on_tick=lambda f, r, images: frames.append((f, images)),
        )
    finally:
        world.close()
    return driver, result, frames


def test_every_tick_is_planned_from_what_the_bridge_would_publish():
    planner = Recording()
    driver, result, frames = drive(planner, 0.8, image_format="raw")
    assert len(driver.ticks) == len(result.frames) == len(planner.seen) == 9
    assert {(t.kind, t.mode) for t in driver.ticks} == {("plan", "fast")}
    assert all(t.planner_ms is not None and t.planner_ms >= 0 for t in driver.ticks)
    for (obs, budget), (frame, images) in zip(planner.seen, frames):
        assert budget is None and obs.stamp_ns == START_TIME_NS + frame.stamp_ns
        assert obs.command == frame.command and obs.instruction == frame.instruction
        np.testing.assert_allclose(obs.ego.pose, frame.ego.pose)
        assert all(np.array_equal(obs.images[c], images[c]) for c in RIG.names)  # raw: the rendered arrays
        assert obs.ego_history.shape == (3, 3)
    # history: poses of the past ticks behind the ego (x < 0 in base_link), clamped at the episode start
    last = planner.seen[-1][0].ego_history
    assert last[-1, 0] < -5.0 and np.all(np.diff(last[:, 0]) >= 0)
    # the driven plan is the planner's own (base_link at the tick)
    np.testing.assert_allclose(result.plans[4], planner.plan(planner.seen[4][0]).trajectory.poses)


def test_jpeg_images_reach_the_planner_decoded_at_the_rig_size():
    planner = Recording()
    _, _, frames = drive(planner, 0.3, image_format="jpeg")
    obs, images = planner.seen[0][0], frames[0][1]
    for cam in RIG.cameras:
        got = obs.images[cam.name]
        assert got.shape == (cam.height, cam.width, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - images[cam.name].astype(int))
        assert 0 < diff.mean() < 8  # lossy, but the same picture


def test_a_failing_planner_gets_the_nodes_fallback_and_the_episode_goes_on():
    driver, result, _ = drive(Recording(fail_from=2), 1.6, image_format="raw")
    kinds = [t.kind for t in driver.ticks]
    assert kinds[:2] == ["plan", "plan"] and result.metrics.reason == "timeout"
    holds = kinds.count("hold")
    assert kinds[2 : 2 + holds] == ["hold"] * holds and 9 <= holds <= 11  # fallback_hold_s 1.0 at 10 Hz
    assert set(kinds[2 + holds :]) == {"stop"} and kinds[-1] == "stop"
    assert all(t.mode == "fallback" and "model diverged" in t.reasons[0] for t in driver.ticks[2:])
    assert result.frames[-1].ego.speed < result.frames[2].ego.speed  # the stop brakes


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="image_format"):
        LoopDriver(Recording(), LoopConfig(), image_format="png")
    world = World(load_scenario("highway_sparse"), 30000)
    try:
        with pytest.raises(ValueError, match="camera images"):
            LoopDriver(Recording(), LoopConfig()).plan(world.frame(), [], None)
    finally:
        world.close()
