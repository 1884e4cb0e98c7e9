"""Closed-loop evaluation: episodes from the closedloop seeds, one drive per task, the figures per scenario
against the expert, determinism, and ``wamdiff closedloop`` (report, traces, bad input)."""

import json

import numpy as np
import pytest

from unit.helpers.runtime import tiny_net
from wamdiff_ros.cli import main
from wamdiff_ros.distributed.fanout import Workers
from wamdiff_ros.evaluation.closed_loop import (
    Drive,
    DriveJob,
    DriverSpec,
    drive_episode,
    episode_record,
    episodes,
    node_params,
    run_drivers,
    strip_timing,
    summarize_drives,
)
from wamdiff_ros.models.config import tiny_rig
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import Rig
from wamdiff_ros.sim.episode import EpisodeMetrics
from wamdiff_ros.sim.scenarios import load_scenarios

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("closedloop")
    return {
        "cv": ConstantVelocityPlanner(Rig.from_dict(tiny_rig())).save(tmp / "cv"),
        "wamdiff": tiny_net().save(tmp / "wamdiff"),
    }


def same_json(a, b) -> bool:
    """``a`` and ``b`` write the same JSON but for their timing fields (NaN equal to NaN, as in the file)."""
    return json.dumps(strip_timing(a), sort_keys=True) == json.dumps(strip_timing(b), sort_keys=True)


def metrics(scenario="merge", seed=30000, **kw) -> EpisodeMetrics:
    base = dict(
        scenario=scenario,
        kind=scenario,
        seed=seed,
        steps=9,
        duration=1.0,
        reason="timeout",
        collision=False,
        at_fault_collision=False,
        collision_kind="",
        route_completion=0.5,
        progress=50.0,
        route_length=100.0,
        mean_pdms=0.8,
        mean_epdms=0.7,
        scored=2,
        driving_score=50.0,
        comfort=1.0,
        mean_speed=10.0,
        plan_ms=1.0,
        step_ms=1.0,
    )
    return EpisodeMetrics(**{**base, **kw})


def test_episodes_go_round_robin_over_the_fresh_closedloop_seeds():
    scenarios = load_scenarios(["merge", "cut_in"])
    eps = episodes(scenarios, 5, max_duration=2.0)
    assert [(s.name, seed) for s, seed in eps] == [
        ("merge", 30000),
        ("cut_in", 30000),
        ("merge", 30001),
        ("cut_in", 30001),
        ("merge", 30002),
    ]
    assert all(s.duration == 2.0 for s, _ in eps) and all(s.split_of(seed) == "closedloop" for s, seed in eps)
    assert episodes(scenarios, 1)[0][0].duration == scenarios[0].duration
    tuning = episodes(scenarios, 4, split="val")
    assert all(s.split_of(seed) == "val" for s, seed in tuning) and {seed for _, seed in tuning}.isdisjoint(
        {30000, 30001}
    )
    with pytest.raises(ValueError, match="--episodes"):
        episodes(scenarios, 0)


def test_summary_per_scenario_against_the_expert():
    drives = [
        Drive("m", metrics(), {"plans": 10, "fast": 8, "slow": 2}, planner_ms=np.array([1.0, 2.0, 3.0])),
        Drive(
            "m",
            metrics(reason="collision", collision=True, at_fault_collision=True, collision_kind="stopped"),
            {"plans": 8, "fast": 8, "fallback_hold": 2},
            planner_ms=np.array([100.0]),
        ),
        Drive("m", metrics("cut_in", reason="route_complete", route_completion=1.0, mean_speed=20.0), {"plans": 10}),
    ]
    experts = [Drive("expert", metrics(mean_speed=20.0, route_completion=1.0)) for _ in drives]
    s = summarize_drives(drives, experts)
    assert list(s) == ["cut_in", "merge", "all"]
    merge = s["merge"]
    assert merge["episodes"] == 2 and merge["collisions"] == 1 and merge["at_fault_collisions"] == 1
    assert merge["collision_kinds"] == {"stopped": 1} and merge["timeouts"] == 1 and merge["off_road"] == 0
    assert merge["slow_rate"] == pytest.approx(2 / 20) and merge["fallback_rate"] == pytest.approx(2 / 20)
    assert merge["planner_ms_p50"] == pytest.approx(2.5)  # pooled over the plans of both episodes
    assert merge["speed_vs_expert"] == pytest.approx(0.5) and merge["expert_completed"] == 1.0
    assert s["all"]["completed"] == pytest.approx(1 / 3) and s["all"]["timeouts"] == 1
    assert s["cut_in"]["speed_vs_expert"] == pytest.approx(1.0)
    assert "expert_mean_speed" not in summarize_drives(drives)["all"]
    with pytest.raises(ValueError, match="expert drives"):
        summarize_drives(drives, experts[:1])
    row = episode_record(drives[0], experts[0])
    assert row["timeout"] and not row["off_road"] and row["slow"] == 2 and row["speed_vs_expert"] == 0.5
    assert row["expert"]["mean_speed"] == 20.0


def test_strip_timing_leaves_what_runs_agree_on():
    report = {"summary": {"all": {"plan_ms": 3.0, "route_completion": 0.5}}, "run": {"wall_s": 1}}
    report["episodes"] = [{"planner_ms_p50": 1.0, "expert": {"step_ms": 2.0, "seed": 7}}]
    expected = {"summary": {"all": {"route_completion": 0.5}}, "episodes": [{"expert": {"seed": 7}}]}
    assert strip_timing(report) == expected


def test_a_drive_repeats_exactly_and_the_expert_drives_the_same_episode(models):
    scenario, seed = episodes(load_scenarios(["cut_in"]), 1, max_duration=1.0)[0]
    spec = DriverSpec("wamdiff", "model", node_params(model_path=str(models["wamdiff"]), backend="torch"))
    a = drive_episode(DriveJob(scenario, seed, spec, score_every=5, trace=True))
    b = drive_episode(DriveJob(scenario, seed, spec, score_every=5, trace=True))
    expert = drive_episode(DriveJob(scenario, seed, DriverSpec("expert", "expert"), trace=True))
    assert same_json(episode_record(a, expert), episode_record(b, expert))
    assert a.counts["plans"] == a.metrics.steps + 1 == len(a.planner_ms) == 11
    assert a.counts["fast"] + a.counts["slow"] == a.counts["plans"]  # adaptive: the gate picks per tick
    for key in ("t", "speed", "progress", "plan_end_x", "mode", "gate"):
        assert len(a.trace[key]) == 11
    np.testing.assert_array_equal(a.trace["x"], b.trace["x"])
    assert expert.counts == {} and len(expert.trace["speed"]) == expert.metrics.steps + 1
    assert "mode" not in expert.trace
    assert expert.trace["x"][0] == a.trace["x"][0] and expert.trace["speed"][0] == a.trace["speed"][0]
    with pytest.raises(ValueError, match="DriverSpec.kind"):
        DriverSpec("x", "human")


def test_closedloop_command_writes_the_report_and_traces(models, tmp_path, capsys):
    out, traces = tmp_path / "cl.json", tmp_path / "traces"
    argv = ["closedloop", "--model", str(models["cv"]), "--episodes", "2", "--scenarios", "merge", "cut_in"]
    argv += ["--max-duration", "0.6", "--workers", "1", "--json", str(out), "--traces", str(traces)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "closed loop: cv against the expert" in text and "merge" in text and "cut_in" in text
    report = json.loads(out.read_text())
    assert report["complete"] and report["settings"]["split"] == "closedloop"
    assert report["settings"]["planner_node"]["backend"] == "onnxruntime"  # the node's default
    assert report["planner"]["family"] == "constant_velocity"
    assert [(e["scenario"], e["seed"]) for e in report["episodes"]] == [("merge", 30000), ("cut_in", 30000)]
    assert report["summary"]["all"]["episodes"] == 2 and report["summary"]["all"]["timeouts"] == 2
    assert report["expert_summary"]["all"]["episodes"] == 2
    assert all(e["plans"] == e["steps"] + 1 == 7 and "expert" in e for e in report["episodes"])
    for name in ("merge-30000", "cut_in-30000"):
        with np.load(traces / f"{name}.npz") as z:
            assert len(z["planner_speed"]) == 7 and len(z["expert_speed"]) == 7 and z["planner_mode"][0] == "fast"
        assert json.loads((traces / f"{name}.json").read_text())["seed"] == 30000
        assert (traces / f"{name}.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "no_such_model"], "no_such_model"),
        (["--scenarios", "nowhere"], "scenario 'nowhere'"),
        (["--episodes", "0"], "--episodes: expected >= 1"),
        (["--budget-ms", "-1"], "--budget-ms"),
    ],
)
def test_closedloop_command_refuses_bad_input(models, extra, message):
    argv = ["closedloop", "--model", str(models["cv"]), "--workers", "1", *extra]
    with pytest.raises(SystemExit, match=message):
        main(argv)


@pytest.mark.slow
def test_two_ray_workers_give_the_report_of_one(models):
    eps = episodes(load_scenarios(["cut_in", "stopped_vehicle"]), 3, max_duration=0.8)
    spec = DriverSpec("wamdiff", "model", node_params(model_path=str(models["wamdiff"]), backend="torch"))
    runs = [run_drivers([DriverSpec("expert", "expert"), spec], eps, Workers(n)) for n in (1, 2)]
    reports = [[episode_record(d, e) for d, e in zip(run["wamdiff"], run["expert"])] for run in runs]
    assert same_json(*reports) and len(reports[0]) == 3
