"""The supervised trainer on WAM-Diff's task, a tiny model and bag: the weights after a few steps equal
those of the trainer before the shared loop, the loss falls, best/last/history are written, a run
stopped after k steps and resumed equals the uninterrupted run bit for bit, resume state is checked,
and the optimiser state survives its safetensors round trip."""

import json

import numpy as np
import pytest
import torch

from unit.helpers.training import tiny_cfg, tiny_dataset, write_tiny_bag
from wamdiff_ros.models.checkpoint import CheckpointError, load_checkpoint
from wamdiff_ros.planners.wamdiff.masked_diffusion import compute_losses
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planners.wamdiff.planner import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.training import Collator
from wamdiff_ros.training.checkpointing import (
    OPTIMIZER_FILE,
    STATE_FILE,
    optimizer_tensors,
    recover_dir,
    replace_dir,
    restore_optimizer,
)
from wamdiff_ros.training.settings import TrainSettings
from wamdiff_ros.training.supervised import Trainer, make_optimizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(write_tiny_bag(tmp_path_factory.mktemp("bag") / "tiny.mcap"))


def _net(seed=0):
    torch.manual_seed(seed)
    return WamDiffNet(tiny_cfg())


def _task(net, **family):
    return WamDiffPlanner(net).supervised_task(**family)


def _opt(net, settings):
    return make_optimizer(list(net.parameters()), {id(p): n for n, p in net.named_parameters()}, settings)


def _settings(**kw):
    base = dict(epochs=2, batch_size=6, lr=3e-3, warmup_steps=2, threads=1, val_frames=0, val_loss_samples=12)
    return TrainSettings(**{**base, **kw})


def _fixed_loss(net, dataset):
    """LLaDA loss on fixed samples, tasks and masks."""
    samples = [dataset[i] for i in range(0, len(dataset), 2)]
    tasks = ["reasoning" if s.language["reasoning"] else "motion" for s in samples]
    batch, _ = Collator.for_net(net)(samples, np.random.default_rng(0), tasks)
    net.eval()
    with torch.no_grad():
        return float(
            compute_losses(net, batch, torch.Generator().manual_seed(0), torch.full((len(samples),), 0.5))["llada"]
        )


def test_weights_equal_the_trainer_before_the_shared_loop(dataset, tmp_path):
    """Six steps (over an epoch end) of the tiny config: the parameter sum the WAM-Diff trainer gave
    before its collator, masking and losses moved into the family's task and the loop became shared."""
    net = _net()
    Trainer(_task(net), dataset, tmp_path, _settings(max_steps=6, val_loss_samples=0), progress=False).run()
    total = sum(float(v.double().sum()) for v in net.state_dict().values() if v.is_floating_point())
    assert total == pytest.approx(584.0252211419065, rel=1e-12, abs=0.0)


def test_training_lowers_the_loss_and_writes_best_last_history(dataset, tmp_path):
    net = _net()
    before = _fixed_loss(net, dataset)
    info = {"train": {"samples": 24}}
    summary = Trainer(_task(net), dataset, tmp_path, _settings(epochs=6), dataset, info, False).run()
    after = _fixed_loss(net, dataset)
    assert after < 0.7 * before, (before, after)
    assert summary["stop_reason"] == "completed" and summary["steps"] == 6 * (len(dataset) // 6)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert history[-1]["val_llada"] < history[0]["val_llada"] and history[-1]["val_loss"] < history[0]["val_loss"]
    best = WamDiffNet.load(tmp_path / "best")
    doc, _ = load_checkpoint(tmp_path / "best")
    assert doc["meta"]["training"]["data"] == {"train": {"samples": 24}}
    assert doc["meta"]["training"]["validation"]["val_loss"] == min(h["val_loss"] for h in history)
    assert best.cfg.rig == net.cfg.rig
    assert sorted(p.name for p in (tmp_path / "last").iterdir()) == sorted(
        ["config.json", "model.safetensors", OPTIMIZER_FILE, STATE_FILE]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_stop_and_resume_equals_uninterrupted(dataset, tmp_path):
    full = Trainer(_task(_net()), dataset, tmp_path / "full", _settings(), progress=False)
    full.run()
    part = Trainer(_task(_net()), dataset, tmp_path / "part", _settings(max_steps=3), progress=False)
    assert part.run()["stop_reason"] == "max_steps 3"
    assert json.loads((tmp_path / "part" / "last" / STATE_FILE).read_text())["step"] == 3
    resumed = Trainer(_task(_net(seed=99)), dataset, tmp_path / "part", _settings(), progress=False)
    summary = resumed.run(resume=True)
    assert summary["steps"] == full.state["step"] == 2 * (len(dataset) // 6)
    for (name, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    fa, fb = optimizer_tensors(full.optimizer)[0], optimizer_tensors(resumed.optimizer)[0]
    assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa)


def test_resume_refuses_missing_or_tampered_state(dataset, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(_task(_net()), dataset, tmp_path, _settings(), progress=False).run(resume=True)
    Trainer(_task(_net()), dataset, tmp_path, _settings(max_steps=1), progress=False).run()
    state = tmp_path / "last" / STATE_FILE
    doc = json.loads(state.read_text())
    doc["optimizer_sha256"] = "0" * 64
    state.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer(_task(_net()), dataset, tmp_path, _settings(), progress=False).run(resume=True)


def test_optimizer_round_trip_and_folder_swap(tmp_path):
    net = _net()
    opt = _opt(net, _settings())
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    tensors, meta = optimizer_tensors(opt)
    json.dumps(meta)  # the non-tensor part is plain JSON
    other = _opt(_net(seed=1), _settings())
    restore_optimizer(other, tensors, meta)
    again, _ = optimizer_tensors(other)
    assert all(torch.equal(tensors[k], again[k]) for k in tensors)
    assert other.param_groups[0]["weight_decay"] == opt.param_groups[0]["weight_decay"]

    target = tmp_path / "last"
    for version in ("a", "b"):
        tmp = tmp_path / f"staging-{version}"
        tmp.mkdir()
        (tmp / "config.json").write_text(version)
        replace_dir(tmp, target)
        assert (target / "config.json").read_text() == version
    target.rename(tmp_path / ".last.old-1-x")  # a crash between the two renames of a swap
    assert recover_dir(target) == target and (target / "config.json").read_text() == "b"
    assert recover_dir(tmp_path / "nothing") is None


def test_cli_builds_the_family_from_the_training_config_and_resumes_with_its_settings(dataset, tmp_path, capsys):
    import yaml

    from wamdiff_ros.cli import main

    model = {k: v for k, v in tiny_cfg().to_dict().items() if k not in ("vocab", "text_tokens")}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(model))
    settings = dict(model=str(tmp_path / "tiny.yaml"), batch_size=4, epochs=1, warmup_steps=1, threads=1)
    settings.update(val_frames=0, val_loss_samples=0, family={"mix": {"motion": 1.0, "reasoning": 0.0, "vqa": 0.0}})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(settings))
    bag = str(dataset.bags[0].path)
    run = tmp_path / "run"
    argv = ["train", "--data", bag, "--out", str(run), "--no-progress", "--no-cache"]
    assert main([*argv, "--config", str(tmp_path / "train.yaml"), "--max-steps", "1"]) == 0
    assert main([*argv, "--resume", "--max-steps", "2"]) == 0  # the run's own settings, from last/
    doc, _ = load_checkpoint(run / "last")
    recorded = doc["meta"]["training"]["settings"]
    assert (
        doc["meta"]["training"]["step"] == 2
        and recorded["batch_size"] == 4
        and recorded["family"] == settings["family"]
    )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**settings, "family": {"mixx": {}}}))
    capsys.readouterr()
    assert main([*argv[:-4], "--out", str(tmp_path / "bad"), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown settings ['mixx']" in capsys.readouterr().err
    assert main(["train", "--data", bag, "--out", str(tmp_path / "none")]) == 2
    assert "expected --config" in capsys.readouterr().err
