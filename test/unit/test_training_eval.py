"""``wamdiff eval`` on a tiny bag: JSON fields per run (model modes, constant velocity, expert log),
per-scenario slow rates, MoE statistics, the logged plan scoring zero displacement, and bad input."""

import json

import pytest
import torch
from _training_helpers import tiny_cfg, tiny_dataset, write_tiny_bag

from wamdiff_ros.cli import main
from wamdiff_ros.models.net import WamDiffNet
from wamdiff_ros.scoring.metrics import SUB_METRICS, TOTALS
from wamdiff_ros.training.evaluate import LoggedPlanner


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
        assert "frames" not in run  # per-frame rows only with --frames
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
    assert report["quantisation"]["x"]["bins"] == cfg.trajectory.x.bins


def test_eval_baseline_only_and_bad_input(setup, capsys):
    tmp, bag = setup
    out = tmp / "cv.json"
    assert main(["eval", "--data", str(bag), "--json", str(out), "--baseline", "constant_velocity", "--no-cache"]) == 0
    assert list(json.loads(out.read_text())["results"]) == ["constant_velocity"]
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
    obs.stamp += 1000.0
    with pytest.raises(ValueError, match="not a frame"):
        planner.plan(obs)
