"""BatchNorm over the global batch of a DDP world, on any backend.

In training, each batch-norm layer normalises with the mean and variance of the whole global batch
(every rank's shard), computed with autograd-aware all-reduces (torch's functional collectives), so
a DDP run takes the gradient of the single-process run on the same global batch. torch's
``SyncBatchNorm`` does this on GPUs only; this module also runs on gloo (CPU). Outside training, or
in a world of one, it is a plain BatchNorm.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
from torch import nn


class GlobalBatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics span all ranks (same parameters and buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        total = funcol.all_reduce(torch.cat([x.sum(dims), count]), "sum", dist.group.WORLD)
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        var = funcol.all_reduce((centred * centred).sum(dims), "sum", dist.group.WORLD) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def globalize_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every ``nn.BatchNorm2d`` below ``module`` into a :class:`GlobalBatchNorm` in place, sharing
    its parameter and buffer tensors (an optimiser built earlier still holds them; state_dict keys are
    unchanged); returns ``module``."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            gbn = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            for key, tensor in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                setattr(gbn, key, tensor)
            gbn.train(child.training)
            setattr(module, name, gbn)
        else:
            globalize_batchnorm(child)
    return module


__all__ = ["GlobalBatchNorm", "globalize_batchnorm"]
