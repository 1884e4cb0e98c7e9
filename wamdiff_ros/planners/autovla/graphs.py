"""AutoVLA's exported graphs (static shapes, batch 1 by default; the token loop stays in Python):

- ``prefill``: ``images`` uint8 (B, C, H, W, 3), ``ego`` float32 (B, F), ``prompt`` int64 (B, P) ->
  ``logits`` (B, V) of the first answer token, ``cache`` (layers, 2, B, heads, max_len, head_dim).
- ``decode``: ``token`` int64 (B, 1), ``pos`` int64 (1,), ``cache`` -> ``logits`` (B, V), ``kv``
  (layers, 2, B, heads, 1, head_dim): the token's key/value, which the loop writes into the cache at
  ``pos`` (positions from ``pos`` on are masked inside the graph, so the cache stays one static tensor).

:class:`BackendNet` stands in for the network in the decoding loop, running both graphs on backends.
"""

from __future__ import annotations

import torch
from torch import nn

from wamdiff_ros.models.encoder import ego_feature_dim
from wamdiff_ros.planners.autovla.net import AutoVLANet
from wamdiff_ros.runtime.base import GraphModule, StepBackend

GRAPHS: tuple[str, ...] = ("prefill", "decode")


class _Prefill(nn.Module):
    def __init__(self, net: AutoVLANet):
        super().__init__()
        self.net = net

    def forward(self, images, ego, prompt):
        return self.net.prefill(images, ego, prompt)


class _Decode(nn.Module):
    def __init__(self, net: AutoVLANet):
        super().__init__()
        self.net = net

    def forward(self, token, pos, cache):
        return self.net.decode_step(token, pos, cache)


def graph_modules(net: AutoVLANet, batch: int = 1) -> list[GraphModule]:
    """Both graphs of ``net`` (sharing its weights) with example and random inputs."""
    cfg = net.cfg
    tc = cfg.transformer
    cam = cfg.rig_obj.cameras[0]
    cache_shape = (tc.layers, 2, batch, tc.heads, cfg.max_len, tc.d_model // tc.heads)
    prefill_x = (
        torch.zeros(batch, len(cfg.rig_obj.cameras), cam.height, cam.width, 3, dtype=torch.uint8),
        torch.zeros(batch, ego_feature_dim(cfg.encoder.history)),
        torch.zeros(batch, cfg.layout.prompt_len, dtype=torch.long),
    )
    decode_x = (
        torch.full((batch, 1), net.act_id, dtype=torch.long),
        torch.tensor([cfg.prefix_len], dtype=torch.long),
        torch.zeros(cache_shape),
    )

    def draw_prefill(g: torch.Generator) -> tuple:
        return (
            torch.randint(0, 256, prefill_x[0].shape, generator=g, dtype=torch.uint8),
            torch.randn(prefill_x[1].shape, generator=g),
            torch.randint(0, len(net.text), prefill_x[2].shape, generator=g),
        )

    def draw_decode(g: torch.Generator) -> tuple:
        pos = torch.randint(cfg.prefix_len, cfg.max_len, (1,), generator=g)
        return torch.randint(0, net.vocab_size, (batch, 1), generator=g), pos, torch.randn(cache_shape, generator=g)

    return [
        GraphModule(
            "prefill", _Prefill(net).eval(), ("images", "ego", "prompt"), ("logits", "cache"), prefill_x, draw_prefill
        ),
        GraphModule("decode", _Decode(net).eval(), ("token", "pos", "cache"), ("logits", "kv"), decode_x, draw_decode),
    ]


class BackendNet:
    """An :class:`AutoVLANet` look-alike whose ``prefill`` / ``decode`` run on ``backends`` (graph name ->
    StepBackend); everything else (config, tokenizer, codebook, ids) comes from the torch network."""

    def __init__(self, net: AutoVLANet, backends: dict[str, StepBackend]):
        missing = set(GRAPHS) - set(backends)
        if missing:
            raise ValueError(f"autovla BackendNet: backends for graphs {sorted(missing)} are missing")
        self._net = net
        self.backends = backends

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._net, name)

    @property
    def torch_net(self) -> AutoVLANet:
        return self._net

    def eval(self) -> BackendNet:
        return self

    def prefill(self, images, ego, prompt):
        out = self.backends["prefill"].run({"images": images, "ego": ego, "prompt": prompt})
        return out["logits"].float().cpu().clone(), out["cache"].clone()

    def decode(self, token, pos, cache):
        """As :meth:`AutoVLANet.decode`: the token's key/value is written into ``cache`` in place."""
        out = self.backends["decode"].run({"token": token, "pos": pos, "cache": cache})
        cache.index_copy_(4, pos.to(cache.device), out["kv"].to(cache.dtype))
        return out["logits"].float().cpu().clone(), cache


__all__ = ["GRAPHS", "BackendNet", "graph_modules"]
