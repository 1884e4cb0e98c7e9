"""``wamdiff eval`` on a tiny bag: JSON fields per run (model modes, constant velocity, expert log),
per-scenario slow rates, MoE statistics, the logged plan scoring zero displacement, and bad input."""

import json

import numpy as np
import pytest
import torch

from unit.helpers.training import tiny_cfg, tiny_dataset, write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.evaluation.runs import LoggedPlanner
from wamdiff_ros.models.checkpoint import load_checkpoint
from wamdiff_ros.planners.wamdiff.gate_thresholds import apply_gate
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.scoring.metrics import SUB_METRICS, TOTALS
from wamdiff_ros.training.gate_calibration import calibrate_gate


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    bag = write_tiny_bag(tmp / "tiny.mcap")
    torch.manual_seed(0)
    WamDiffNet(tiny_cfg()).save(tmp / "model")
    return tmp, bag


def test_eval_json_fields(setup):
    tmp, bag = setup
    out = tmp / "eval.json"
    argv = ["eval", "--model", str(tmp / "model"), "--data", str(bag), "--json", str(out), "--every", "4"]
    argv += ["--mode", "fast,slow", "--baseline", "constant_velocity", "expert", "--no-cache", "--threads", "1"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["data"]["samples"] == 24 and report["data"]["episodes"] == 2
    assert report["data"]["scenarios"] == {"cut_in": 12, "highway": 12}
    assert list(report["results"]) == ["wamdiff/fast", "wamdiff/slow", "constant_velocity", "expert_log"]
    for run in report["results"].values():
        agg = run["aggregate"]
        assert agg["frames"] == 6
        for key in (*TOTALS, *SUB_METRICS, "l2_1s", "l2_2s", "l2_3s", "ade", "fde", "collision_rate_3s"):
            assert 0.0 <= agg[key] < 1e3, key
        assert set(agg["by_scenario"]) == {"cut_in", "highway"}
        assert set(run) == {"aggregate"}  # per-frame rows only in the file of --frames
    res = report["results"]
    assert res["wamdiff/fast"]["aggregate"]["slow_rate"] == 0.0 and res["wamdiff/slow"]["aggregate"]["slow_rate"] == 1.0
    assert res["wamdiff/slow"]["aggregate"]["by_scenario"]["cut_in"]["slow_rate"] == 1.0
    assert res["wamdiff/fast"]["aggregate"]["by_scenario"]["highway"]["slow_rate"] == 0.0
    moe = res["wamdiff/fast"]["aggregate"]["moe"]
    cfg = tiny_cfg()
    assert len(moe["load_mean"]) == cfg.transformer.layers and len(moe["load_mean"][0]) == cfg.moe.num_experts
    assert moe["entropy_mean"] > 0
    expert = res["expert_log"]["aggregate"]
    assert expert["ade"] == pytest.approx(0.0, abs=1e-9) and expert["fde"] == pytest.approx(0.0, abs=1e-9)
    assert res["constant_velocity"]["aggregate"]["ade"] < 0.5  # the synthetic ego drives at constant speed
    assert report["planner"]["quantisation"]["x"]["bins"] == cfg.trajectory.x.bins


def test_eval_baseline_only_and_bad_input(setup, capsys):
    tmp, bag = setup
    out = tmp / "cv.json"
    frames = tmp / "cv.jsonl"
    argv = ["eval", "--data", str(bag), "--json", str(out), "--no-cache", "--frames", str(frames)]
    assert main([*argv, "--baseline", "constant_velocity", "navsim_constant_velocity"]) == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["constant_velocity", "navsim_constant_velocity"]
    rows = [json.loads(line) for line in frames.read_text().splitlines()]
    assert [r["run"] for r in rows] == ["constant_velocity"] * 24 + ["navsim_constant_velocity"] * 24
    for row in rows[24:]:  # straight ahead, NAVSIM's ConstantVelocityAgent
        plan = np.asarray(row["plan"])
        np.testing.assert_allclose(plan[:, 1:], 0.0)
        assert (np.diff(plan[:, 0]) >= -1e-9).all()
    assert main(["eval", "--data", str(bag), "--json", str(out)]) == 2
    assert "--model" in capsys.readouterr().err
    assert (
        main(["eval", "--model", str(tmp / "model"), "--data", str(bag), "--json", str(out), "--mode", "medium"]) == 2
    )
    assert main(["eval", "--model", str(tmp / "missing"), "--data", str(bag), "--json", str(out)]) == 2


def test_logged_planner_refuses_foreign_frames(setup):
    _, bag = setup
    ds = tiny_dataset(bag)
    planner = LoggedPlanner(ds)
    obs = ds.observation(3)
    assert planner.plan(obs).trajectory.poses.shape == (8, 3)
    obs.stamp_ns += 1_000_000_000_000
    with pytest.raises(ValueError, match="not a frame"):
        planner.plan(obs)


def _rows(pdms, p_complex=None, conf=None):
    rows = []
    for i, v in enumerate(pdms):
        row = {"index": i, "PDMS": v}
        if p_complex is not None:
            row.update(p_complex=p_complex[i], fast_confidence=conf[i])
        rows.append(row)
    return rows


def test_gate_calibration_picks_the_frames_where_slow_helps():
    # frames 0-3: complex (high p_complex), slow helps; frames 4-9: simple, slow hurts; frame 9 unsure
    p_complex = [0.9, 0.8, 0.85, 0.7, 0.1, 0.2, 0.1, 0.3, 0.2, 0.1]
    conf = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.1]
    fast = _rows([0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2], p_complex, conf)
    slow = _rows([1.0, 1.0, 1.0, 1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9])
    cal = calibrate_gate(fast, slow, max_slow_rate=0.5)
    assert cal["found"] and cal["slow_rate"] == pytest.approx(0.5)
    assert cal["adaptive"] == pytest.approx(cal["oracle"]) == pytest.approx(0.99)
    assert 0.3 <= cal["theta"] < 0.7 and 0.1 < cal["c_min"] <= 0.6
    assert cal["fast_only"] == pytest.approx(0.72) and cal["slow_only"] == pytest.approx(0.89)
    capped = calibrate_gate(fast, slow, max_slow_rate=0.2)
    assert capped["slow_rate"] <= 0.2 and capped["adaptive"] < cal["adaptive"]
    assert not calibrate_gate(fast, slow, max_slow_rate=0.05, min_slow_rate=0.05)["found"]
    with pytest.raises(ValueError, match="p_complex"):
        calibrate_gate(_rows([1.0]), _rows([1.0]))
    with pytest.raises(ValueError, match="share no frames"):
        calibrate_gate(fast, [{"index": 99, "PDMS": 1.0}])


def test_eval_calibrates_and_applies_the_gate(setup):
    tmp, bag = setup
    out = tmp / "cal.json"
    argv = ["eval", "--model", str(tmp / "model"), "--data", str(bag), "--json", str(out), "--every", "6"]
    assert main([*argv, "--mode", "fast,slow", "--calibrate-gate", "0.5", "--no-cache", "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    cal = report["gate_calibration"]
    assert cal["frames"] == 4 and cal["fast_only"] == report["results"]["wamdiff/fast"]["aggregate"]["PDMS"]
    assert main([*argv, "--mode", "fast", "--calibrate-gate", "0.5"]) == 2
    if cal["found"]:
        apply_gate(tmp / "model", tmp / "gated", cal["theta"], cal["c_min"], "test")
        net = WamDiffNet.load(tmp / "gated")
        assert (net.cfg.gate.theta, net.cfg.gate.c_min) == (cal["theta"], cal["c_min"])
        assert load_checkpoint(tmp / "gated")[0]["meta"]["gate_calibration"]["note"] == "test"
