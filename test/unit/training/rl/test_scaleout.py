"""RL scale-out: reward scoring on Ray workers gives the in-process rewards (small steps stay in-process),
and DDP under torch.distributed (gloo, 2 CPU processes) takes the single-process steps on the same global
batch, writes from rank 0 only, and its last/ resumes in one process to the uninterrupted result.

The DDP runs step with plain SGD instead of the RL trainer's AdamW, for the reason
test/unit/distributed/test_torchrun.py gives: AdamW magnifies float32 rounding of near-zero gradient
entries, SGD keeps a weight difference proportional to the gradient difference.
"""

import json
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from unit.helpers.training import tiny_cfg, tiny_dataset, write_tiny_bag
from wamdiff_ros.distributed.fanout import Workers, session
from wamdiff_ros.distributed.torchrun import DistContext
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planners.wamdiff.policy import WamDiffPolicy
from wamdiff_ros.training.checkpointing import STATE_FILE
from wamdiff_ros.training.rl import rewards, trainer
from wamdiff_ros.training.rl.rewards import RewardConfig, RewardJob, score_group, score_job
from wamdiff_ros.training.rl.settings import RLSettings
from wamdiff_ros.training.rl.trainer import LAST, RLTrainer, reference_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
TIMING = ("rollout_s", "update_s", "train_seconds")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_tiny_bag(tmp_path_factory.mktemp("bag") / "tiny.mcap")


def _settings(**kw):
    base = dict(
        group_size=4, scenes_per_step=4, every=2, epochs=50, lr=1e-3, kl_beta=0.01, threads=1, val_frames=0,
        save_every_steps=2, reward=RewardConfig(ade_weight=1.0, at_fault_penalty=0.5), beat_logged=True,
    )  # fmt: skip
    return RLSettings(**{**base, **kw})


def _trainer(bag, out, workers=None, dist=None, **kw):
    torch.manual_seed(0)
    policy = WamDiffPolicy(WamDiffPlanner(WamDiffNet(tiny_cfg())))
    ref = reference_copy(policy.net)
    return RLTrainer(
        policy, ref, tiny_dataset(bag), out, _settings(**kw), start_model="tiny", progress=False, workers=workers,
        dist=dist,
    )  # fmt: skip


def _untimed(history):
    return [{k: v for k, v in rec.items() if k not in TIMING} for rec in history]


def test_a_pickled_reward_job_scores_what_the_trainer_scores(bag):
    """The job reopens the dataset from its source and builds the scene itself."""
    ds = tiny_dataset(bag)
    scene = ds.scene(5)
    poses = np.stack([scene.human_trajectory, scene.human_trajectory + np.array([0.0, 2.5, 0.0])])
    config = RewardConfig(ade_weight=0.5, at_fault_penalty=1.0)
    job = RewardJob(ds.source, 5, poses, config, logged=True)
    assert len(pickle.dumps(job)) < 5000
    got, want = score_job(pickle.loads(pickle.dumps(job))), score_group(poses, scene, config, logged=True)
    np.testing.assert_array_equal(got.rewards, want.rewards)
    assert got.metrics.keys() == want.metrics.keys() and got.logged == want.logged
    for k in want.metrics:
        np.testing.assert_array_equal(got.metrics[k], want.metrics[k])
    assert want.rewards[0] > want.rewards[1] and want.logged == want.rewards[0]


@pytest.mark.parametrize("threshold, fanned_out", [(17, False), (16, True)])
def test_rewards_fan_out_from_the_threshold(bag, tmp_path, monkeypatch, threshold, fanned_out):
    """4 scenes × G=4 = 16 rollouts a step: scored by tasks from fanout_min_rollouts 16, in-process above
    (the tasks run in-process here; their results equal, so the runs do too)."""
    calls = []

    def tasks_here(jobs, workers):
        calls.append(len(jobs))
        return [score_job(j) for j in jobs]

    monkeypatch.setattr(rewards, "score_groups", tasks_here)
    run = _trainer(bag, tmp_path / "run", workers=Workers(2), max_steps=2, fanout_min_rollouts=threshold)
    run.run()
    assert calls == ([4, 4] if fanned_out else [])
    plain = _trainer(bag, tmp_path / "plain", max_steps=2)
    plain.run()
    assert _untimed(run.state["history"]) == _untimed(plain.state["history"])


def test_scenes_per_step_must_split_over_the_ranks(bag):
    with pytest.raises(ValueError, match="scenes_per_step 3: expected a multiple of the world size 2"):
        _trainer(bag, "unused", dist=DistContext(0, 2, 0, "gloo"), scenes_per_step=3)


@pytest.mark.slow
def test_rewards_on_ray_workers_equal_in_process_rewards(bag, tmp_path):
    pytest.importorskip("ray")
    with session(Workers(2)):
        ray_run = _trainer(bag, tmp_path / "ray", workers=Workers(2), max_steps=2, fanout_min_rollouts=8)
        ray_run.run()
    plain = _trainer(bag, tmp_path / "plain", max_steps=2)
    plain.run()
    assert _untimed(ray_run.state["history"]) == _untimed(plain.state["history"])
    for (k, a), b in zip(plain.net.state_dict().items(), ray_run.net.state_dict().values()):
        assert torch.equal(a, b), k


# -- DDP -------------------------------------------------------------------------------------------


def _sgd(params, settings):
    return torch.optim.SGD(params, lr=settings.lr)


def _rank(rank: int, world: int, port: int, bag: str, out: str, steps: int) -> None:
    """One DDP rank of a ``steps``-step run into ``out`` (torchrun's environment, set by hand)."""
    from wamdiff_ros.distributed.torchrun import process_group

    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    trainer.make_optimizer = _sgd
    with process_group() as ctx:
        run = _trainer(bag, out, dist=ctx, max_steps=steps, lr=0.05, beat_logged=False)
        run.run()
        torch.save(run.net.state_dict(), os.path.join(out, f"rank{rank}.pt"))
        if ctx.is_main:
            (Path(out) / "history_rank0.json").write_text(json.dumps(run.state["history"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        if v.is_floating_point():
            diff = (v - b[k]).abs().max().item()
            assert diff <= TOL, f"{k}: max |Δ| {diff:.2e} > {TOL}"
        else:
            assert torch.equal(v, b[k]), k


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_resume_in_one(bag, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "make_optimizer", _sgd)
    one = _trainer(bag, tmp_path / "one", max_steps=3, lr=0.05, beat_logged=False)
    one.run()
    full = _trainer(bag, tmp_path / "full", max_steps=5, lr=0.05, beat_logged=False)
    full.run()

    ddp = tmp_path / "ddp"
    ddp.mkdir()
    mp.spawn(_rank, args=(2, _free_port(), str(bag), str(ddp), 3), nprocs=2, join=True)
    rank0, rank1 = (torch.load(ddp / f"rank{r}.pt") for r in (0, 1))
    start = _trainer(bag, tmp_path / "unused").net.state_dict()
    assert max((v - start[k]).abs().max().item() for k, v in rank0.items() if v.is_floating_point()) > 100 * TOL
    _assert_close(rank0, one.net.state_dict())
    _assert_close(rank1, rank0)
    _assert_close(WamDiffNet.load(ddp / LAST).state_dict(), one.net.state_dict())
    assert json.loads((ddp / LAST / STATE_FILE).read_text())["step"] == 3
    assert sorted(p.name for p in ddp.iterdir()) == [
        "history.json",
        "history_rank0.json",
        "last",
        "rank0.pt",
        "rank1.pt",
    ]
    history = json.loads((ddp / "history_rank0.json").read_text())
    assert [r["informative_groups"] for r in history] == [r["informative_groups"] for r in one.state["history"]]
    for got, want in zip(_untimed(history), _untimed(one.state["history"])):
        assert got.keys() == want.keys()
        for k in ("reward_mean", "pdms_mean", "ade_mean", "loss", "kl", "grad_norm"):
            assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k

    resumed = _trainer(bag, ddp, max_steps=5, lr=0.05, beat_logged=False)
    assert resumed.run(resume=True)["steps"] == 5
    _assert_close(resumed.net.state_dict(), full.net.state_dict())
