"""AutoVLA's exported graphs (static shapes, batch 1 by default; the token loop stays in Python):

- ``prefill``: ``images`` uint8 (B, C, H, W, 3), ``ego`` float32 (B, F), ``prompt`` int64 (B, P) ->
  ``logits`` (B, live_vocab) of the first answer token, ``act_logits`` (B, live_vocab) of the token
  after a first ``[ACT]``, ``kv`` (layers, 2, B, heads, prefix_len + 1, head_dim): the prefix's and
  that ``[ACT]``'s keys/values.
- ``decode``: ``token`` int64 (B, 1), ``pos`` int64 (1,), the cache as one input per layer and
  key/value (``cache0_k``, ``cache0_v``, ``cache1_k`` …, each (B, heads, max_len, head_dim), so the
  graph never slices, hence copies, one large cache tensor) -> ``logits`` (B, live_vocab), ``kv``
  (layers, 2, B, heads, 1, head_dim): the token's key/value, which the loop writes into the cache at
  ``pos`` (positions from ``pos`` on are masked inside the graph, so the cache stays static).

:class:`BackendNet` stands in for the network in the decoding loop, running both graphs on backends
with one buffer per graph input, the cache included, that every call updates in place (bound once by
backends that bind buffers).
"""

from __future__ import annotations

import torch
from torch import nn

from wamdiff_ros.models.encoder import ego_feature_dim, example_images
from wamdiff_ros.planners.autovla.net import AutoVLANet
from wamdiff_ros.runtime.base import GraphModule, StepBackend

GRAPHS: tuple[str, ...] = ("prefill", "decode")


class _Prefill(nn.Module):
    def __init__(self, net: AutoVLANet):
        super().__init__()
        self.net = net

    def forward(self, images, ego, prompt):
        return self.net.prefill_kv(images, ego, prompt)


class _Decode(nn.Module):
    def __init__(self, net: AutoVLANet):
        super().__init__()
        self.net = net

    def forward(self, token, pos, *cache):
        return self.net.decode_step(token, pos, list(zip(cache[0::2], cache[1::2])))


def cache_names(layers: int) -> tuple[str, ...]:
    """The decode graph's cache inputs: ``cache<layer>_k``, ``cache<layer>_v`` per layer."""
    return tuple(f"cache{i}_{kv}" for i in range(layers) for kv in "kv")


def cache_inputs(cache: torch.Tensor) -> dict[str, torch.Tensor]:
    """The decode graph's cache inputs: views of one (layers, 2, B, heads, L, head_dim) cache."""
    return dict(zip(cache_names(cache.shape[0]), (kv for layer in cache for kv in layer)))


def graph_modules(net: AutoVLANet, batch: int = 1) -> list[GraphModule]:
    """Both graphs of ``net`` (sharing its weights) with example and random inputs."""
    cfg = net.cfg
    tc = cfg.transformer
    cache_shape = (tc.layers, 2, batch, tc.heads, cfg.max_len, tc.d_model // tc.heads)
    prefill_x = (
        example_images(cfg.rig_obj, cfg.encoder, batch),
        torch.zeros(batch, ego_feature_dim(cfg.encoder.history)),
        torch.zeros(batch, cfg.layout.prompt_len, dtype=torch.long),
    )
    decode_x = (
        torch.full((batch, 1), net.act_id, dtype=torch.long),
        torch.tensor([cfg.prefix_len], dtype=torch.long),
        *cache_inputs(torch.zeros(cache_shape)).values(),
    )

    def draw_prefill(g: torch.Generator) -> tuple:
        return (
            torch.randint(0, 256, prefill_x[0].shape, generator=g, dtype=torch.uint8),
            torch.randn(prefill_x[1].shape, generator=g),
            torch.randint(0, len(net.text), prefill_x[2].shape, generator=g),
        )

    def draw_decode(g: torch.Generator) -> tuple:
        pos = torch.randint(cfg.prefix_len, cfg.max_len, (1,), generator=g)
        token = torch.randint(0, net.vocab_size, (batch, 1), generator=g)
        return token, pos, *cache_inputs(torch.randn(cache_shape, generator=g)).values()

    return [
        GraphModule(
            "prefill",
            _Prefill(net).eval(),
            ("images", "ego", "prompt"),
            ("logits", "act_logits", "kv"),
            prefill_x,
            draw_prefill,
        ),
        GraphModule(
            "decode",
            _Decode(net).eval(),
            ("token", "pos", *cache_names(tc.layers)),
            ("logits", "kv"),
            decode_x,
            draw_decode,
        ),
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
        self._inputs = {
            name: {t.name: torch.zeros(t.shape, dtype=t.torch_dtype(), device=b.device) for t in b.graph.inputs}
            for name, b in backends.items()
        }
        dec = self._inputs["decode"]
        layer = dec["cache0_k"]
        self._cache = layer.new_zeros(net.cfg.transformer.layers, 2, *layer.shape)
        dec.update(cache_inputs(self._cache))

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
        """As :meth:`AutoVLANet.prefill`, the cache being this object's one buffer (valid until the next
        prefill; positions after the prefill's hold the previous frame's keys/values, which every decode
        step masks)."""
        given = {"images": images, "ego": ego, "prompt": prompt}
        backend, feed = self.backends["prefill"], self._inputs["prefill"]
        backend.check_inputs(given)
        for name, x in given.items():
            feed[name].copy_(torch.as_tensor(x))
        out = backend.run(feed)
        kv = out["kv"]
        self._cache[..., : kv.shape[4], :] = kv
        return out["logits"].float().cpu().clone(), out["act_logits"].float().cpu().clone(), self._cache

    def decode(self, token: int, pos: int, cache):
        """As :meth:`AutoVLANet.decode`: the token's key/value is written into ``cache`` in place."""
        feed = self._inputs["decode"]
        if cache is not self._cache:
            feed = {**feed, **cache_inputs(cache)}
        feed["token"].fill_(token)
        feed["pos"].fill_(pos)
        out = self.backends["decode"].run(feed)
        cache[..., pos : pos + 1, :] = out["kv"]
        return out["logits"].float().cpu().clone(), cache


__all__ = ["GRAPHS", "BackendNet", "cache_inputs", "cache_names", "graph_modules"]
