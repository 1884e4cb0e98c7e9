"""ONNX graphs of the WAM-Diff network, static shapes, loops left outside.

Graphs (batch 1 by default; names as files ``<name>.onnx``):

- ``encode``: ``images`` uint8 (B, C, H, W, 3), ``ego`` float32 (B, F), ``prompt`` int64 (B, P) ->
  ``prefix_kv`` (layers, 2, B, heads, S+P, head_dim), ``complexity`` (B,) logit.
- ``step_traj_fast``: ``prefix_kv`` (…, S+P, …), ``ids`` int64 (B, T) -> ``logits`` (B, T, V),
  ``block_kv`` (layers, 2, B, heads, T, head_dim). One decoding step of the trajectory block.
- ``step_text``: the same for the text block (B, R) on the (S+P) prefix (reasoning steps); its
  ``block_kv`` of the final text extends the prefix for the slow trajectory.
- ``step_traj_slow``: trajectory step on the (S+P+R) prefix (after reasoning).

Networks with a mixture of experts add ``router_probs`` and ``router_gates`` (layers, B, N, E) to every
graph: the routers' probabilities and gates of the graph's N tokens, from which
:func:`~wamdiff_ros.models.moe.routing_stats` reports expert load and entropy on every backend.

The decoding loop (remasking orders, thresholds, the gate) stays in Python around these graphs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from wamdiff_ros.models.encoder import ego_feature_dim, example_images
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.runtime.base import GraphModule

GRAPHS: tuple[str, ...] = ("encode", "step_traj_fast", "step_text", "step_traj_slow")
ROUTER_OUTPUTS: tuple[str, ...] = ("router_probs", "router_gates")


def has_router_outputs(net: WamDiffNet) -> bool:
    """Whether the graphs of ``net`` output its routers' probabilities and gates (it has a MoE)."""
    return net.cfg.moe.routing != "none"


def _router_outputs(aux: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([a["probs"] for a in aux]), torch.stack([a["gates"] for a in aux])


class EncodeGraph(nn.Module):
    def __init__(self, net: WamDiffNet):
        super().__init__()
        self.net = net
        self.stats = has_router_outputs(net)

    def forward(self, images, ego, prompt):
        kv, complexity, aux = self.net.encode(images, ego, prompt, collect_stats=self.stats)
        return (kv, complexity, *_router_outputs(aux)) if self.stats else (kv, complexity)


class StepGraph(nn.Module):
    def __init__(self, net: WamDiffNet, offset: int):
        super().__init__()
        self.net = net
        self.offset = offset
        self.stats = has_router_outputs(net)

    def forward(self, prefix_kv, ids):
        logits, kv, aux = self.net.step(prefix_kv, ids, self.offset, collect_stats=self.stats)
        return (logits, kv, *_router_outputs(aux)) if self.stats else (logits, kv)


def example_inputs(net: WamDiffNet, name: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Zero inputs of graph ``name`` with its static shapes."""
    cfg, lay = net.cfg, net.layout
    tc = cfg.transformer
    kv = (tc.layers, 2, batch, tc.heads)
    hd = tc.d_model // tc.heads
    if name == "encode":
        return (
            example_images(cfg.rig_obj, cfg.encoder, batch),
            torch.zeros(batch, ego_feature_dim(cfg.encoder.history)),
            torch.zeros(batch, lay.prompt_len, dtype=torch.long),
        )
    if name == "step_traj_fast":
        return torch.zeros(*kv, lay.prefix_len, hd), torch.full((batch, lay.traj_len), 1, dtype=torch.long)
    if name == "step_text":
        return torch.zeros(*kv, lay.prefix_len, hd), torch.full((batch, lay.text_len), 1, dtype=torch.long)
    if name == "step_traj_slow":
        return (
            torch.zeros(*kv, lay.prefix_len + lay.text_len, hd),
            torch.full((batch, lay.traj_len), 1, dtype=torch.long),
        )
    raise ValueError(f"graph: expected one of {GRAPHS}, got {name!r}")


def graph_module(net: WamDiffNet, name: str) -> tuple[nn.Module, list[str], list[str]]:
    """The module of graph ``name`` (in eval mode) with its input and output names."""
    lay = net.layout
    stats = list(ROUTER_OUTPUTS) if has_router_outputs(net) else []
    if name == "encode":
        return EncodeGraph(net).eval(), ["images", "ego", "prompt"], ["prefix_kv", "complexity", *stats]
    offset = {"step_traj_fast": lay.traj_offset, "step_text": lay.text_offset, "step_traj_slow": lay.traj_offset}
    if name not in offset:
        raise ValueError(f"graph: expected one of {GRAPHS}, got {name!r}")
    return StepGraph(net, offset[name]).eval(), ["prefix_kv", "ids"], ["logits", "block_kv", *stats]


def random_inputs(net: WamDiffNet, name: str) -> Callable[[torch.Generator], tuple[torch.Tensor, ...]]:
    """Random inputs of graph ``name`` at its static shapes: valid ids, raw pixels, N(0, 1) floats."""
    x = example_inputs(net, name)

    def draw(g: torch.Generator) -> tuple[torch.Tensor, ...]:
        if name == "encode":
            return (
                torch.randint(0, 256, x[0].shape, generator=g, dtype=torch.uint8),
                torch.randn(x[1].shape, generator=g),
                torch.randint(0, len(net.space.text), x[2].shape, generator=g),
            )
        return torch.randn(x[0].shape, generator=g), torch.randint(0, len(net.space), x[1].shape, generator=g)

    return draw


def graph_modules(net: WamDiffNet, batch: int = 1) -> list[GraphModule]:
    """Every graph of ``net`` (sharing its weights) as the runtime's :class:`GraphModule` items."""
    out = []
    for name in GRAPHS:
        module, ins, outs = graph_module(net, name)
        out.append(
            GraphModule(
                name, module, tuple(ins), tuple(outs), example_inputs(net, name, batch), random_inputs(net, name)
            )
        )
    return out
