"""WAM-Diff's network on inference backends: :class:`BackendNet` stands in for
:class:`~wamdiff_ros.planners.wamdiff.net.WamDiffNet` in the planner, answering ``encode`` and ``step``
with one :class:`~wamdiff_ros.runtime.base.StepBackend` per exported graph and delegating everything
else (config, layout, token space, parameters) to the torch network it was built from. Logits come
back to the CPU for the decoding loop; key/value caches stay on the backend's device between steps.

MoE routing statistics come from the graphs' ``router_probs`` / ``router_gates`` outputs, so
``PlanResult.moe`` is the same on every backend (exports made before those outputs existed give none).
"""

from __future__ import annotations

from wamdiff_ros.planners.wamdiff.graphs import GRAPHS
from wamdiff_ros.runtime.base import StepBackend


class BackendNet:
    """A :class:`WamDiffNet` look-alike whose ``encode``/``step`` run on ``backends`` (graph name ->
    StepBackend: ``encode``, ``step_traj_fast``, ``step_text``, ``step_traj_slow``)."""

    def __init__(self, net, backends: dict[str, StepBackend]):
        missing = set(GRAPHS) - set(backends)
        if missing:
            raise ValueError(f"BackendNet: backends for graphs {sorted(missing)} are missing")
        self._net = net
        self.backends = backends
        lay = net.layout
        self._steps = {
            (lay.traj_offset, lay.prefix_len): "step_traj_fast",
            (lay.text_offset, lay.prefix_len): "step_text",
            (lay.traj_offset, lay.prefix_len + lay.text_len): "step_traj_slow",
        }

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._net, name)

    @property
    def torch_net(self):
        """The torch network the graphs were made from (weights, config)."""
        return self._net

    def eval(self) -> BackendNet:
        return self

    def describe(self) -> dict[str, dict]:
        return {name: b.describe() for name, b in self.backends.items()}

    def encode(self, images, ego, prompt, collect_stats: bool = False):
        """As :meth:`WamDiffNet.encode`: prefix key/values (on the backend's device), complexity logit
        (CPU), MoE aux (per layer ``probs``/``gates``) with ``collect_stats``."""
        out = self.backends["encode"].run({"images": images, "ego": ego, "prompt": prompt})
        return out["prefix_kv"], out["complexity"].float().cpu(), router_aux(out) if collect_stats else []

    def step(self, prefix_kv, ids, offset: int, collect_stats: bool = False):
        """As :meth:`WamDiffNet.step`: logits (CPU, a fresh tensor), the block's key/values (device), MoE
        aux with ``collect_stats``."""
        key = (offset, int(prefix_kv.shape[4]))
        if key not in self._steps:
            raise ValueError(f"BackendNet.step: no exported graph for offset {offset} on a {key[1]}-token prefix")
        out = self.backends[self._steps[key]].run({"prefix_kv": prefix_kv, "ids": ids})
        aux = router_aux(out) if collect_stats else []
        return out["logits"].float().cpu().clone(), out["block_kv"], aux


def router_aux(out: dict) -> list[dict]:
    """Per-layer ``{"probs", "gates"}`` (B, N, E) CPU copies of a graph's router outputs (backends may
    reuse their output buffers on the next run), as the torch modules' aux; [] without them."""
    if "router_probs" not in out:
        return []
    probs, gates = (out[k].float().cpu().clone() for k in ("router_probs", "router_gates"))
    return [{"probs": p, "gates": g} for p, g in zip(probs, gates)]


__all__ = ["BackendNet", "router_aux"]
