"""End to end on the real world: `wamdiff collect` one short episode → `wamdiff train` 2 epochs of a
tiny model (with validation PDMS) → `wamdiff train --resume` → `wamdiff eval` against the baselines →
`wamdiff train --init` fine-tuning from the trained checkpoint, and with `--model` into a model config whose
trajectory tokens have a prior."""

import json

import pytest
import torch
import yaml

from wamdiff_ros.cli import main
from wamdiff_ros.models.checkpoint import load_checkpoint
from wamdiff_ros.paths import config_path
from wamdiff_ros.planners.wamdiff.config import tiny_config

pytestmark = pytest.mark.slow


def test_collect_train_resume_eval(tmp_path):
    cfg = tiny_config()
    rig = cfg.rig_obj.to_dict()
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    model = {k: v for k, v in cfg.to_dict().items() if k not in ("vocab", "text_tokens")}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(model))
    settings = yaml.safe_load(config_path("training", "wamdiff_small.yaml").read_text())
    settings.update(batch_size=4, epochs=2, warmup_steps=2, threads=1, val_frames=4, val_loss_samples=8)
    settings["model"] = str(tmp_path / "tiny.yaml")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(settings))
    short = yaml.safe_load(config_path("scenarios", "highway_sparse.yaml").read_text())
    short["duration"] = 6.0  # 61 ticks: 21 with a full 4 s future
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))

    bag = tmp_path / "drive.mcap"
    argv = ["collect", "--split", "train", "--episodes", "1", "--out", str(bag), "--rig", str(tmp_path / "rig.yaml")]
    assert main([*argv, "--scenarios", str(tmp_path / "short.yaml")]) == 0

    run = tmp_path / "run"
    train = ["train", "--data", str(tmp_path / "drive"), "--val", str(tmp_path / "drive"), "--out", str(run)]
    train += ["--config", str(tmp_path / "train.yaml"), "--no-progress"]
    assert main([*train, "--max-steps", "3", "--no-cache"]) == 0
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 3
    assert main([*train, "--resume", "--no-cache"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["step"] == 2 * (21 // 4) and history[-1]["epoch"] == 2.0
    assert all(0.0 <= h["val_pdms"] <= 1.0 and h["val_frames"] == 4 for h in history)

    out = tmp_path / "eval.json"
    argv = ["eval", "--model", str(run / "best"), "--data", str(tmp_path / "drive"), "--json", str(out)]
    assert main([*argv, "--every", "5", "--mode", "fast,adaptive", "--baseline", "constant_velocity", "expert"]) == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["wamdiff/fast", "wamdiff/adaptive", "constant_velocity", "expert_log"]
    assert results["expert_log"]["aggregate"]["ade"] == pytest.approx(0.0, abs=1e-9)
    assert all(r["aggregate"]["frames"] == 5 for r in results.values())

    tuned = tmp_path / "tuned"
    argv = ["train", "--data", str(tmp_path / "drive"), "--out", str(tuned), "--init", str(run / "best")]
    argv += ["--config", str(tmp_path / "train.yaml"), "--no-progress", "--no-cache"]
    assert main([*argv, "--max-steps", "1", "--lr", "1e-9"]) == 0
    doc, weights = load_checkpoint(tuned / "last")
    init_doc, init = load_checkpoint(run / "best")
    assert doc["config"] == init_doc["config"]
    assert doc["meta"]["training"]["data"]["init"] == str(run / "best")
    assert weights.keys() == init.keys()
    stats = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm buffers move in one train step
    changed = sorted(k for k in init if not k.endswith(stats) and not torch.allclose(weights[k], init[k], atol=1e-6))
    assert changed == [], changed
    counts = [k for k in init if k.endswith("num_batches_tracked")]
    assert counts and all(int(weights[k]) == int(init[k]) + 1 for k in counts)  # continued, not restarted

    prior = dict(model, trajectory=dict(model["trajectory"], prior="constant_velocity"))
    (tmp_path / "tiny_prior.yaml").write_text(yaml.safe_dump(prior))
    rebased = tmp_path / "rebased"
    argv = ["train", "--data", str(tmp_path / "drive"), "--out", str(rebased), "--init", str(run / "best")]
    argv += ["--model", str(tmp_path / "tiny_prior.yaml"), "--config", str(tmp_path / "train.yaml")]
    assert main([*argv, "--no-progress", "--no-cache", "--max-steps", "1", "--lr", "1e-9"]) == 0
    doc, weights = load_checkpoint(rebased / "last")
    assert doc["config"]["trajectory"]["prior"] == "constant_velocity"  # the weights, in the new config
    assert all(torch.allclose(weights[k], init[k], atol=1e-6) for k in init if not k.endswith(stats))
