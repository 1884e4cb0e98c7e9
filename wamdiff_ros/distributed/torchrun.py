"""torch.distributed under ``torchrun``: the process group, rank-sharded batches, rank-0-only writes.

``torchrun`` starts one process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; a command started without them is a world of one and never
touches torch.distributed. :func:`process_group` joins the group (gloo on CPU, nccl on CUDA) and
leaves it at exit. A global batch is cut into equal contiguous shards, one per rank, so the mean loss
of the shards, averaged by DDP, equals the mean loss of the global batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the world.

    Attributes:
        rank: global rank, 0 … world_size − 1; rank 0 writes files.
        world_size: processes in the group (1: no torch.distributed).
        local_rank: rank on this node (the CUDA device index under nccl).
        backend: ``"gloo"`` / ``"nccl"``, or None for a world of one.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """This process writes checkpoints, logs and reports."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def max_int(self, value: int) -> int:
        """The largest ``value`` over all ranks (a stop decision every rank takes together)."""
        if not self.distributed:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (every rank passes the same keys in the same order)."""
        if not self.distributed or not values:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, t.tolist(), strict=True))

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (losses of the shards -> loss of the global batch)."""
        if not self.distributed:
            return values
        return {k: v / self.world_size for k, v in self.sum(values).items()}

    def sum_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Replace each parameter's gradient by its sum over the ranks, in one all-reduce (for a loss
        that is a sum over the global batch computed in several backward passes, where DDP's hooks do
        not fit). A parameter no rank has a gradient for keeps none; one that only some ranks reached
        counts as zeros on the others."""
        if not self.distributed or not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int64)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        reached = [p for p, h in zip(params, has.tolist(), strict=True) if h]
        if not reached:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in reached])
        dist.all_reduce(flat)
        offset = 0
        for p in reached:
            p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()


def env_context() -> DistContext:
    """Rank and world size from torchrun's environment (a world of one without it)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    try:
        rank, world, local = (int(os.environ.get(n, d)) for n, d in zip(names, ("0", "1", "0"), strict=True))
    except ValueError:
        got = {n: os.environ.get(n) for n in names}
        raise ValueError(f"torchrun environment: expected integer RANK, WORLD_SIZE, LOCAL_RANK, got {got}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"torchrun environment: expected 0 <= RANK < WORLD_SIZE, got RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank, world, local)


@contextlib.contextmanager
def process_group(device: str = "cpu") -> Iterator[DistContext]:
    """Join torchrun's process group for the block (gloo for ``cpu``, nccl for ``cuda``), then leave it."""
    ctx = env_context()
    if not ctx.distributed:
        yield ctx
        return
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    try:
        yield DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend)
    finally:
        dist.destroy_process_group()


def shard(items: Sequence, ctx: DistContext) -> Sequence:
    """This rank's contiguous equal share of a global batch; ValueError unless it divides evenly."""
    n, w = len(items), ctx.world_size
    if n % w:
        raise ValueError(f"batch of {n} samples: expected a multiple of the world size {w} (one equal shard per rank)")
    k = n // w
    return items[ctx.rank * k : (ctx.rank + 1) * k]


class LossModule(torch.nn.Module):
    """``loss_fn(net, *args)`` as a module's forward, so DDP sees (and synchronises) ``net``'s training pass."""

    def __init__(self, net: torch.nn.Module, loss_fn):
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn

    def forward(self, *args, **kwargs):
        return self.loss_fn(self.net, *args, **kwargs)


def training_module(net: torch.nn.Module, loss_fn, ctx: DistContext) -> torch.nn.Module:
    """The module to call for training losses: ``net`` with ``loss_fn`` in a world of one; in a larger
    world the same under DDP (gradients averaged over ranks, rank 0's weights broadcast first) with its
    batch norms over the global batch (:func:`wamdiff_ros.distributed.batchnorm.globalize_batchnorm`)."""
    module = LossModule(net, loss_fn)
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    from wamdiff_ros.distributed.batchnorm import globalize_batchnorm

    globalize_batchnorm(net)
    return DistributedDataParallel(module, device_ids=[ctx.local_rank] if ctx.backend == "nccl" else None)


__all__ = ["DistContext", "LossModule", "env_context", "process_group", "shard", "training_module"]
