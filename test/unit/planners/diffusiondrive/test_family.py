"""The DiffusionDrive family through the shared machinery: load_planner on torch and ONNX Runtime (every
graph within 1e-4 of torch, plans equal), `wamdiff export` with parity, `wamdiff bench model`,
`wamdiff eval`, and two anchor-GRPO steps with DiffusionDriveV2's advantage rules and imitation loss.
The planner node runs it in test/ros/test_diffusiondrive_node.py."""

import json

import numpy as np
import pytest
import torch

from unit.helpers.runtime import observation
from unit.helpers.training import write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.planners import load_planner
from wamdiff_ros.planners.diffusiondrive import DiffusionDrivePlanner
from wamdiff_ros.planners.diffusiondrive.config import tiny_config
from wamdiff_ros.planners.diffusiondrive.graphs import GRAPHS
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet
from wamdiff_ros.runtime.export import read_export
from wamdiff_ros.training.rl.rewards import RewardConfig
from wamdiff_ros.training.rl.session import build_trainer
from wamdiff_ros.training.rl.settings import RLSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diffusiondrive")
    torch.manual_seed(0)
    planner = DiffusionDrivePlanner(DiffusionDriveNet(tiny_config()))
    return tmp, planner.rig, planner.save(tmp / "model"), write_tiny_bag(tmp / "tiny.mcap")


def test_loads_on_torch_and_onnxruntime_with_equal_plans(setup):
    _, rig, model, _ = setup
    eager = load_planner(model, rig=rig)
    ort = load_planner(model, rig=rig, backend="onnxruntime", threads=1)
    assert type(eager) is DiffusionDrivePlanner and ort.runtime["backend"] == "onnxruntime"
    for mode in ("fast", "slow"):
        eager.set_mode(mode)
        ort.set_mode(mode)
        for seed in range(2):
            obs = observation(rig, seed)
            a, b = eager.plan(obs), ort.plan(obs)
            assert a.mode == b.mode == mode
            np.testing.assert_allclose(a.candidates, b.candidates, atol=1e-4)
            np.testing.assert_allclose(a.trajectory.poses, b.trajectory.poses, atol=1e-4)


def test_export_cli_parity_of_every_graph(setup, capsys):
    tmp, _, model, _ = setup
    out = tmp / "exported"
    assert main(["export", "--model", str(model), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime: OK" in text  # every graph's every output within 1e-4 of torch
    assert all(f"vs torch, {name}:" in text for name in GRAPHS)
    meta = read_export(out)
    assert meta["family"] == "diffusiondrive" and list(meta["graphs"]) == list(GRAPHS)


def test_bench_model_cli(setup, tmp_path):
    _, _, model, _ = setup
    out = tmp_path / "bench.json"
    argv = ["bench", "model", "--model", str(model), "--iters", "3", "--warmup", "1", "--threads", "1"]
    assert main([*argv, "--modes", "fast,slow", "--backend", "onnxruntime", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["mode"] for r in rows} >= {"fast", "slow"} and all(r["p50_ms"] > 0 for r in rows)


def test_eval_cli(setup):
    tmp, _, model, bag = setup
    out = tmp / "eval.json"
    argv = ["eval", "--model", str(model), "--data", str(bag), "--json", str(out), "--every", "8"]
    assert main([*argv, "--no-cache", "--threads", "1", "--mode", "fast"]) == 0
    agg = json.loads(out.read_text())["results"]["diffusiondrive/fast"]["aggregate"]
    assert agg["frames"] > 0 and 0.0 <= agg["PDMS"] <= 1.0 and np.isfinite(agg["ade"])


def test_rl_imitation_loss_is_in_metres(setup):
    """Moving a logged future that lies behind every prediction another 500 m back raises the L1 by 250
    (x and y averaged): metres, as the supervised regression, not the normalised units (a rise of 5)."""
    from wamdiff_ros.planners.diffusiondrive.policy import AnchorGRPOPolicy

    _, rig, model, _ = setup
    policy = AnchorGRPOPolicy(load_planner(model), steps=2)
    rollout = policy.sample(observation(rig), 2, torch.Generator().manual_seed(0))
    target = np.zeros((policy.planner.cfg.spec.num_poses, 3)) - [1000.0, 0.0, 0.0]
    near = float(policy.imitation_loss(rollout, target))
    far = float(policy.imitation_loss(rollout, target - [500.0, 0.0, 0.0]))
    assert far - near == pytest.approx(250.0, abs=1.0)


@pytest.mark.slow
def test_two_anchor_grpo_steps(setup):
    tmp, _, model, bag = setup
    settings = RLSettings(
        algorithm="grpo", group_size=2, scenes_per_step=2, every=8, epochs=4, max_steps=2, lr=1e-3, kl_beta=0.0,
        inner_epochs=1, threads=1, val_frames=2, val_every_steps=1, save_every_steps=1, trainable="decoder",
        steps=4, advantage_floor=0.0, beat_logged=True, fail_advantage=-1.0, imitation_weight=0.1,
        imitation_weight_idle=1.0, reward=RewardConfig(),
    )  # fmt: skip
    trainer = build_trainer(model, [str(bag)], tmp / "rl", settings, [str(bag)], cache=False, progress=False)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    summary = trainer.run()
    assert summary["steps"] == 2
    hist = trainer.state["history"]
    assert all(np.isfinite(h["loss"]) and "imitation" in h for h in hist)
    after = trainer.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if not k.startswith("encoder."))
    assert type(load_planner(tmp / "rl" / "last")) is DiffusionDrivePlanner


@pytest.mark.slow
def test_wamdiff_train_runs_the_family_task(setup, tmp_path):
    import yaml

    from wamdiff_ros.planners.diffusiondrive.config import default_anchors

    *_, bag = setup
    cfg = tiny_config().to_dict()
    cfg.pop("anchors")
    (tmp_path / "dd_tiny.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["train", "--config", "training/diffusiondrive_small.yaml", "--model", str(tmp_path / "dd_tiny.yaml")]
    argv += ["--data", str(bag), "--val", str(bag), "--out", str(tmp_path / "run"), "--max-steps", "3"]
    assert main([*argv, "--batch-size", "4", "--val-frames", "2", "--threads", "1", "--no-cache", "--no-progress"]) == 0
    trained = load_planner(tmp_path / "run" / "last")
    assert type(trained) is DiffusionDrivePlanner
    # prepare() fitted the anchors on the bag's futures (not the untrained placeholders) and they were saved
    assert not np.allclose(trained.cfg.anchor_array, default_anchors(6, trained.spec))
