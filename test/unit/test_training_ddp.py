"""DDP under torch.distributed (gloo, 2 CPU processes): the weights after N steps equal the 1-process run
with the same global batch, every rank holds the same weights, only rank 0 writes, and a DDP run's
last/ resumes in a single process to the uninterrupted single-process result.

The runs here step with plain SGD instead of the trainer's AdamW: the two runs' gradients agree to
float32 rounding (summation order differs), but AdamW divides each entry by its own running scale,
which blows that rounding up to a change of up to one learning rate on entries whose gradient is
near zero, so no tolerance in weight space would tell rounding from a real fault. SGD keeps a
weight difference proportional to the gradient difference.
"""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from _training_helpers import tiny_cfg, tiny_dataset, write_tiny_bag

from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planners.wamdiff.planner import WamDiffPlanner
from wamdiff_ros.training import supervised
from wamdiff_ros.training.checkpointing import STATE_FILE
from wamdiff_ros.training.settings import TrainSettings
from wamdiff_ros.training.supervised import Trainer

pytestmark = pytest.mark.slow

TOL = 1e-5


def _settings(**kw):
    base = dict(epochs=2, batch_size=4, lr=0.05, warmup_steps=2, threads=1, val_frames=0, val_loss_samples=0)
    return TrainSettings(**{**base, **kw})


def _sgd(params, names, settings):
    return torch.optim.SGD(params, lr=settings.lr)


def _net():
    torch.manual_seed(0)
    return WamDiffNet(tiny_cfg())


def _task(net):
    return WamDiffPlanner(net).supervised_task()


def _rank(rank: int, world: int, port: int, bag: str, out: str, steps: int) -> None:
    """One DDP rank of a ``steps``-step run into ``out`` (torchrun's environment, set by hand)."""
    from wamdiff_ros.distributed.torchrun import process_group

    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    supervised.make_optimizer = _sgd
    with process_group() as ctx:
        assert ctx.backend == "gloo" and ctx.world_size == world
        trainer = Trainer(_task(_net()), tiny_dataset(bag), out, _settings(max_steps=steps), progress=False, dist=ctx)
        trainer.run()
        torch.save(trainer.net.state_dict(), os.path.join(out, f"rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_close(a: dict, b: dict) -> None:
    """Weights within :data:`TOL`; batch-norm running statistics (buffers, not trained) within TOL relative."""
    assert a.keys() == b.keys()
    buffers = {k for k in a if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}
    for k, v in a.items():
        if k in buffers:
            torch.testing.assert_close(v, b[k], rtol=TOL, atol=TOL, msg=k)
        elif v.is_floating_point():
            diff = (v - b[k]).abs().max().item()
            assert diff <= TOL, f"{k}: max |Δ| {diff:.2e} > {TOL}"


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_tiny_bag(tmp_path_factory.mktemp("bag") / "tiny.mcap")


def test_two_gloo_ranks_match_one_process_and_resume_in_one(bag, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(supervised, "make_optimizer", _sgd)
    dataset = tiny_dataset(bag)
    one = Trainer(_task(_net()), dataset, tmp_path / "one", _settings(max_steps=3), progress=False)
    one.run()
    full = Trainer(_task(_net()), dataset, tmp_path / "full", _settings(max_steps=5), progress=False)
    full.run()

    ddp = tmp_path / "ddp"
    ddp.mkdir()
    mp.spawn(_rank, args=(2, _free_port(), str(bag), str(ddp), 3), nprocs=2, join=True)
    rank0, rank1 = (torch.load(ddp / f"rank{r}.pt") for r in (0, 1))
    _assert_close(rank0, one.net.state_dict())
    _assert_close(rank1, rank0)
    assert any(not torch.equal(v, _net().state_dict()[k]) for k, v in rank0.items())  # it did train
    _assert_close(WamDiffNet.load(ddp / "last").state_dict(), one.net.state_dict())
    assert json.loads((ddp / "last" / STATE_FILE).read_text())["step"] == 3
    assert sorted(p.name for p in ddp.iterdir()) == ["best", "history.json", "last", "rank0.pt", "rank1.pt"]

    resumed = Trainer(_task(_net()), dataset, ddp, _settings(max_steps=5), progress=False)
    assert resumed.run(resume=True)["steps"] == 5
    _assert_close(resumed.net.state_dict(), full.net.state_dict())


def test_global_batch_must_split_evenly(bag):
    from wamdiff_ros.distributed.torchrun import DistContext

    with pytest.raises(ValueError, match="--batch-size 5: expected a multiple of the world size 2"):
        Trainer(_task(_net()), tiny_dataset(bag), "unused", _settings(batch_size=5), dist=DistContext(0, 2, 0, "gloo"))
