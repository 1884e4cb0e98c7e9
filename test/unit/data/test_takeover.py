"""DAgger with expert takeover: who drives which tick, and `wamdiff collect --takeover`'s recorded episodes
(only the takeovers, each an episode of its own with its road, readable as training samples)."""

import dataclasses

import numpy as np
import pytest
import yaml

from wamdiff_ros.data.bag import ImageEncoder
from wamdiff_ros.data.collect import EpisodeJob, record_episode, takeover_job
from wamdiff_ros.data.takeover import TakeoverDriver, TakeoverSchedule
from wamdiff_ros.models.config import tiny_rig
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import Rig
from wamdiff_ros.sim.scenarios import load_scenarios
from wamdiff_ros.types import PlanResult, Trajectory


def test_schedule_alternates_model_and_expert():
    s = TakeoverSchedule(drive_ticks=2, takeover_ticks=3)
    assert [s.takeover(t) for t in range(11)] == [None, None, 0, 0, 0, None, None, 1, 1, 1, None]
    s.check_horizon(2)
    with pytest.raises(ValueError, match=r"--takeover-ticks: expected more than the trajectory horizon \(3 ticks\)"):
        s.check_horizon(3)
    with pytest.raises(ValueError, match="drive and takeover ticks >= 1"):
        TakeoverSchedule(0, 3)


class Fake:
    def __init__(self, x):
        self.x, self.calls, self.resets = x, 0, 0

    def reset(self):
        self.resets += 1

    def plan(self, frame, lanes, images):
        self.calls += 1
        return PlanResult(trajectory=Trajectory(np.full((8, 3), self.x)), candidates=np.zeros((1, 8, 3)))


def test_driver_hands_control_over_and_both_plan_every_tick():
    model, expert = Fake(1.0), Fake(2.0)
    d = TakeoverDriver(model, expert, TakeoverSchedule(1, 2))
    driven = []
    for _ in range(6):
        r = d.plan(None, [], None)
        driven.append((r.trajectory.poses[0, 0], d.takeover, r.info.get("takeover")))
    assert driven == [(1.0, None, None), (2.0, 0, 0), (2.0, 0, 0), (1.0, None, None), (2.0, 1, 1), (2.0, 1, 1)]
    assert model.calls == expert.calls == 6
    d.reset()
    assert (d.tick, d.takeover, model.resets, expert.resets) == (0, None, 2, 2)


@pytest.fixture
def cv_model(tmp_path):
    return ConstantVelocityPlanner(Rig.from_dict(tiny_rig())).save(tmp_path / "cv")


@pytest.fixture
def rig_path(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(tiny_rig()))
    return str(path)


def test_collect_records_only_the_takeovers(cv_model, rig_path):
    rig = Rig.from_dict(tiny_rig())
    spec, _ = takeover_job(str(cv_model), rig_path, 20, 60)
    scenario = load_scenarios(["merge"])[0].with_duration_cap(3.0)
    job = EpisodeJob(scenario, scenario.seed_list("train")[0], ImageEncoder(rig), (spec, TakeoverSchedule(10, 8)))
    out = record_episode(job)
    names = [f.episode for f, _, _ in out.ticks]
    base = f"merge-{job.seed}"
    assert names == [f"{base}/takeover0"] * 8 + [f"{base}/takeover1"] * 3
    assert [lanes is not None for _, _, lanes in out.ticks] == [True] + [False] * 7 + [True, False, False]
    stamps = [f.stamp_ns for f, _, _ in out.ticks]
    assert stamps[0] == 10 * 100_000_000 and stamps[8] == 28 * 100_000_000
    assert out.meta["takeovers"] == [f"{base}/takeover0", f"{base}/takeover1"]
    assert out.meta["recorded_ticks"] == 11 and out.meta["ticks"] == 31


def test_takeover_job_checks_the_rig_and_the_horizon(cv_model, rig_path, tmp_path):
    with pytest.raises(ValueError, match=r"--takeover-ticks: expected more than the trajectory horizon \(40 ticks\)"):
        takeover_job(str(cv_model), rig_path, 20, 40)
    with pytest.raises(ValueError, match="the model's rig does not match --rig rigs/default.yaml"):
        takeover_job(str(cv_model), "rigs/default.yaml", 20, 60)
    with pytest.raises(ValueError, match="model_path"):
        takeover_job(str(tmp_path / "none"), "rigs/default.yaml", 20, 60)


def test_schedule_is_plain_data():
    assert dataclasses.asdict(TakeoverSchedule()) == {"drive_ticks": 20, "takeover_ticks": 60}
