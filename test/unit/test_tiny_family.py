"""Proof that a planner family is one folder plus one registration: the tiny family of
``tiny_family.py`` (in test/, not in the package, registered in-process) runs through
load_planner on torch and ONNX Runtime, `wamdiff bench model`, `wamdiff export` with parity,
`wamdiff eval` and two RL steps with continuous Gaussian actions, with no change to shared code.
The family lives in test/tiny_family.py; the planner node on real rclpy runs it in
test/ros/test_tiny_family_node.py (with the ROS fixtures)."""

import json

import numpy as np
import pytest
import torch
from tiny_family import FAMILY, TinyPlanner, save_tiny

from unit.helpers.runtime import observation
from unit.helpers.training import tiny_cfg, write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.planners import families, load_planner
from wamdiff_ros.runtime.export import read_export
from wamdiff_ros.training.rl.rewards import RewardConfig
from wamdiff_ros.training.rl.session import build_trainer
from wamdiff_ros.training.rl.settings import RLSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny_family")
    rig = tiny_cfg().rig_obj
    return tmp, rig, save_tiny(tmp / "model", rig), write_tiny_bag(tmp / "tiny.mcap")


def test_registered_family_loads_on_torch_and_onnxruntime(setup):
    _, rig, model, _ = setup
    assert FAMILY in families()
    eager = load_planner(model, rig=rig)
    assert type(eager) is TinyPlanner and eager.runtime == {}
    ort = load_planner(model, rig=rig, backend="onnxruntime", threads=1)
    assert ort.runtime["backend"] == "onnxruntime" and ort.runtime["export_dir"] == str(model / "onnx")
    for seed in range(3):
        obs = observation(rig, seed)
        a, b = eager.plan(obs), ort.plan(obs)
        assert a.trajectory.poses.shape == (8, 3) and np.isfinite(a.trajectory.poses).all()
        np.testing.assert_allclose(a.trajectory.poses, b.trajectory.poses, atol=1e-5)
    assert not np.allclose(
        eager.plan(observation(rig, 0)).trajectory.poses, eager.plan(observation(rig, 1)).trajectory.poses
    )
    assert eager.describe()["family"] == FAMILY and eager.modes == ()
    eager.set_mode("slow")  # one path: planned whatever is asked
    assert eager.plan(observation(rig, 0)).mode == "fast"


def test_export_cli_with_parity(setup, capsys):
    tmp, _, model, _ = setup
    out = tmp / "exported"
    assert main(["export", "--model", str(model), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "forward.onnx" in text and "onnxruntime: OK" in text
    meta = read_export(out)
    assert meta["family"] == FAMILY and list(meta["graphs"]) == ["forward"]


def test_bench_model_cli(setup, tmp_path):
    _, _, model, _ = setup
    out = tmp_path / "bench.json"
    argv = ["bench", "model", "--model", str(model), "--iters", "3", "--warmup", "1", "--threads", "1"]
    argv += ["--modes", "fast", "--backend", "torch,onnxruntime", "--json", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert {r["backend"] for r in rows} == {"torch", "onnxruntime"}
    assert all(r["p50_ms"] > 0 for r in rows)
    assert (
        doc["meta"]["planner"]["family"] == FAMILY
        and doc["meta"]["backends"]["onnxruntime"]["backend"] == "onnxruntime"
    )


def test_eval_cli(setup):
    tmp, _, model, bag = setup
    out = tmp / "eval.json"
    argv = ["eval", "--model", str(model), "--data", str(bag), "--json", str(out), "--every", "8"]
    assert main([*argv, "--no-cache", "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    assert list(report["results"]) == [FAMILY]
    agg = report["results"][FAMILY]["aggregate"]
    assert agg["frames"] > 0 and 0.0 <= agg["PDMS"] <= 1.0 and np.isfinite(agg["ade"])
    assert report["planner"]["family"] == FAMILY


def test_two_rl_steps_with_continuous_actions(setup):
    tmp, _, model, bag = setup
    settings = RLSettings(
        group_size=4, scenes_per_step=2, every=8, epochs=4, max_steps=2, lr=1e-2, kl_beta=0.01, threads=1, val_frames=2,
        val_every_steps=1, save_every_steps=1, trainable="all", reward=RewardConfig(ade_weight=1.0),
    )  # fmt: skip
    trainer = build_trainer(model, [str(bag)], tmp / "rl", settings, [str(bag)], cache=False, progress=False)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    summary = trainer.run()
    assert summary["steps"] == 2 and summary["stop_reason"] == "max_steps 2"
    assert all(h["kl"] >= 0 and np.isfinite(h["loss"]) for h in trainer.state["history"])
    after = trainer.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    resumed = load_planner(tmp / "rl" / "last")
    assert type(resumed) is TinyPlanner
    for k, v in resumed.network().state_dict().items():
        torch.testing.assert_close(v, after[k])


def test_rl_refuses_a_family_without_a_policy(setup, tmp_path):
    _, rig, _, bag = setup
    from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner

    cv = ConstantVelocityPlanner(rig).save(tmp_path / "cv")
    with pytest.raises(ValueError, match="'constant_velocity' family has no RL policy"):
        build_trainer(cv, [str(bag)], tmp_path / "rl", RLSettings(threads=1), cache=False, progress=False)
