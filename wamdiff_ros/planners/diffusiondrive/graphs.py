"""ONNX graphs of the DiffusionDrive network, static shapes, the denoising loop left outside.

- ``encode``: ``images`` uint8 (B, C, H, W, 3), ``ego`` float32 (B, F) -> ``scene`` (B, S, d).
- ``step``: ``scene``, ``x_t`` (B, K, T, 2) normalised, ``t`` (B,) float -> ``x0`` (B, K, T, 2),
  ``logits`` (B, K). One denoising step of the K anchors (the fast path).
- ``step_slow``: the same for the selector's (copies + 1)·K candidates.
- ``coarse``: ``scene``, ``cand`` (B, (copies + 1)·K, T, 2) -> ``scores`` (B, M) logits.
- ``fine``: ``scene``, ``cand`` (B, keep, T, 2) -> ``scores`` (B, keep) logits.
"""

from __future__ import annotations

import torch
from torch import nn

from wamdiff_ros.models.encoder import ego_feature_dim, example_images
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet
from wamdiff_ros.runtime.base import GraphModule

FAST_GRAPHS: tuple[str, ...] = ("encode", "step")
GRAPHS: tuple[str, ...] = ("encode", "step", "step_slow", "coarse", "fine")


class _Encode(nn.Module):
    def __init__(self, net: DiffusionDriveNet):
        super().__init__()
        self.net = net

    def forward(self, images, ego):
        return (self.net.encode(images, ego),)


class _Step(nn.Module):
    def __init__(self, net: DiffusionDriveNet):
        super().__init__()
        self.net = net

    def forward(self, scene, x_t, t):
        return self.net.denoise(scene, x_t, t)


class _Score(nn.Module):
    def __init__(self, net: DiffusionDriveNet, fine: bool):
        super().__init__()
        self.net = net
        self.fine = fine

    def forward(self, scene, cand):
        return (self.net.fine_scores(scene, cand) if self.fine else self.net.coarse_scores(scene, cand),)


def selector_sizes(net: DiffusionDriveNet) -> tuple[int, int]:
    """(candidates M, kept) of the slow path."""
    sel = net.cfg.selector
    m = (sel.copies + 1) * net.num_anchors
    return m, min(sel.keep, m)


def graph_modules(net: DiffusionDriveNet, batch: int = 1) -> list[GraphModule]:
    """Every graph of ``net`` (sharing its weights) as the runtime's :class:`GraphModule` items."""
    cfg = net.cfg
    s = sum((c.height // cfg.encoder.stride) * (c.width // cfg.encoder.stride) for c in cfg.rig_obj.cameras) + 1
    d, tp, k = cfg.decoder.d_model, cfg.spec.num_poses, net.num_anchors
    m, keep = selector_sizes(net)
    images = example_images(cfg.rig_obj, cfg.encoder, batch)
    ego = torch.zeros(batch, ego_feature_dim(cfg.encoder.history))
    scene = torch.zeros(batch, s, d)
    t = torch.full((batch,), float(cfg.diffusion.noise_t))

    def traj(n: int) -> torch.Tensor:
        return torch.zeros(batch, n, tp, 2)

    def encode_draw(g: torch.Generator) -> tuple[torch.Tensor, ...]:
        return torch.randint(0, 256, images.shape, generator=g, dtype=torch.uint8), torch.randn(ego.shape, generator=g)

    def step_draw(n: int):
        def draw(g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (
                torch.randn(scene.shape, generator=g),
                torch.randn(traj(n).shape, generator=g),
                torch.randint(0, cfg.diffusion.train_t_max, (batch,), generator=g).float(),
            )

        return draw

    net = net.eval()
    return [
        GraphModule("encode", _Encode(net), ("images", "ego"), ("scene",), (images, ego), encode_draw),
        GraphModule("step", _Step(net), ("scene", "x_t", "t"), ("x0", "logits"), (scene, traj(k), t), step_draw(k)),
        GraphModule(
            "step_slow", _Step(net), ("scene", "x_t", "t"), ("x0", "logits"), (scene, traj(m), t), step_draw(m)
        ),
        GraphModule("coarse", _Score(net, False), ("scene", "cand"), ("scores",), (scene, traj(m))),
        GraphModule("fine", _Score(net, True), ("scene", "cand"), ("scores",), (scene, traj(keep))),
    ]


__all__ = ["FAST_GRAPHS", "GRAPHS", "graph_modules", "selector_sizes"]
