"""The one exported graph of the TrajMoE family: encoder + scoring of the whole (inference) vocabulary.

``score``: images uint8 (B, C, H, W, 3), ego float32 (B, F) -> ``plan_scores`` (B, V) ranking score of
each entry and ``logits`` (B, V, M) sub-score logits. Static shapes: V is ``inference_size``.
"""

from __future__ import annotations

import torch
from torch import nn

from wamdiff_ros.models.encoder import ego_feature_dim, example_images
from wamdiff_ros.planners.trajmoe.net import TrajMoENet, plan_scores
from wamdiff_ros.runtime.base import GraphModule

INPUTS = ("images", "ego")
OUTPUTS = ("plan_scores", "logits")


class ScoreGraph(nn.Module):
    """``(images, ego) -> (plan_scores, logits)`` of a :class:`TrajMoENet` (eval mode, no statistics)."""

    def __init__(self, net: TrajMoENet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, ego: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _, imitation, _ = self.net(images, ego)
        return plan_scores(logits, imitation, self.net.cfg), logits


def graph_modules(net: TrajMoENet, batch: int = 1) -> list[GraphModule]:
    cfg = net.cfg
    example = (
        example_images(cfg.rig_obj, cfg.encoder, batch),
        torch.zeros(batch, ego_feature_dim(cfg.encoder.history)),
    )

    def draw(g: torch.Generator) -> tuple[torch.Tensor, ...]:
        images = torch.randint(0, 256, example[0].shape, generator=g, dtype=torch.uint8)
        return images, torch.randn(example[1].shape, generator=g)

    return [GraphModule("score", ScoreGraph(net).eval(), INPUTS, OUTPUTS, example, draw)]


__all__ = ["INPUTS", "OUTPUTS", "ScoreGraph", "graph_modules"]
