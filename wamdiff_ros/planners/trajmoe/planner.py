"""TrajMoE planner: score every vocabulary entry for the scene and drive the best one.

Per frame: one network call (encoder + scoring of the inference vocabulary) gives each entry's
sub-score logits and its ranking score (:func:`~.net.plan_scores`); the plan is the best-ranked entry,
and the ``scoring.candidates`` best entries are returned with their ranking scores. With the eager
torch network the MoE routing statistics go into ``PlanResult.moe``; a backend runs the exported graph.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from wamdiff_ros.models.encoder import scene_inputs
from wamdiff_ros.models.moe import routing_stats
from wamdiff_ros.planners.base import Planner, check_rig, register, register_untrained
from wamdiff_ros.planners.trajmoe.config import METRICS, ModelConfig
from wamdiff_ros.planners.trajmoe.net import TrajMoENet, plan_scores
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult, Trajectory

if TYPE_CHECKING:
    from wamdiff_ros.runtime.base import GraphModule, StepBackend

FAMILY = "trajmoe"

TRAINABLE: dict[str, tuple[str, ...]] = {"all": (), "heads": ("encoder.", "scene.", "query.", "blocks.", "ln_f.")}
"""What RL may train -> parameter-name prefixes it freezes (``heads``: the score heads only)."""


class TrajMoEPlanner(Planner):
    """:class:`~wamdiff_ros.planners.base.Planner` over a :class:`TrajMoENet`, or its ``score`` graph on a
    backend (``backend``).

    Args:
        net: the network (put in eval mode here).
        collect_stats: MoE routing statistics into ``PlanResult.moe`` (eager torch only).
        source: where the model came from.
        backend: a :class:`~wamdiff_ros.runtime.base.StepBackend` running the ``score`` graph (None: eager).
    """

    family = FAMILY

    def __init__(self, net: TrajMoENet, collect_stats: bool = True, source: str = "", backend=None):
        self.net = net.eval()
        self.cfg: ModelConfig = net.cfg
        self.rig: Rig = self.cfg.rig_obj
        self.spec = self.cfg.spec
        self.history = self.cfg.encoder.history
        self.past_frame_s = self.cfg.encoder.past_frame_s
        self.collect_stats = collect_stats
        self.source = source
        self.runtime: dict = {}
        self._backend = backend

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """Network inputs of one observation: images uint8 (1, C, H, W, 3) and ego features (1, F);
        ValueError naming the camera when the images do not match the model's rig."""
        images, ego = scene_inputs(self.rig, obs, self.cfg.encoder)
        return images, ego

    def scores(self, images: torch.Tensor, ego: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(V,) ranking scores, (V, M) sub-score logits of the inference vocabulary, and MoE statistics."""
        if self._backend is not None:
            out = self._backend.run({"images": images, "ego": ego})
            return out["plan_scores"][0].float().cpu(), out["logits"][0].float().cpu(), {}
        with torch.inference_mode():
            logits, _, imitation, aux = self.net(images, ego, collect_stats=self.collect_stats)
            ranked = plan_scores(logits, imitation, self.cfg)
        moe = routing_stats([aux], self.cfg.moe.routing) if self.collect_stats else {}
        return ranked[0], logits[0], moe

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t0 = time.perf_counter()
        images, ego = self.inputs(obs)
        t1 = time.perf_counter()
        ranked, logits, moe = self.scores(images, ego)
        t2 = time.perf_counter()
        k = min(self.cfg.scoring.candidates, len(ranked))
        top = torch.topk(ranked, k).indices
        vocab = self.network().vocabulary
        candidates = vocab[top].double().numpy()
        best = int(top[0])
        sub = torch.sigmoid(logits[best]).tolist()
        timings = {"preprocess": (t1 - t0) * 1e3, "score": (t2 - t1) * 1e3}
        timings["total"] = (time.perf_counter() - t0) * 1e3
        info: dict[str, Any] = {
            "entry": best,
            "entries_scored": len(ranked),
            "predicted": dict(zip(METRICS, sub)),
            "model": self.source or "untrained",
        }
        if budget_ms is not None:
            info["over_budget"] = timings["total"] > budget_ms
        return PlanResult(
            trajectory=Trajectory(candidates[0], self.spec, "base_link", obs.stamp_ns),
            candidates=candidates,
            candidate_scores=ranked[top].double().numpy(),
            mode="fast",
            timings_ms=timings,
            moe=moe,
            info=info,
        )

    # -- network, export, RL, training ---------------------------------------------------------------
    def network(self) -> TrajMoENet:
        return self.net

    def checkpoint_config(self) -> dict:
        return self.cfg.to_dict()

    def save(self, folder: str | os.PathLike, meta: dict | None = None) -> Path:
        return Path(self.net.save(folder, meta))

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        from wamdiff_ros.planners.trajmoe.graphs import graph_modules

        return graph_modules(self.net, batch)

    def with_backends(self, backends: dict[str, StepBackend], info: dict) -> TrajMoEPlanner:
        out = TrajMoEPlanner(self.net, collect_stats=False, source=self.source, backend=backends["score"])
        out.runtime = dict(info)
        return out

    def rl_policy(self, temperature: float = 1.0, entries: int = 16, seed: int = 0, **unknown: Any):
        """:class:`~wamdiff_ros.planners.trajmoe.policy.GaussianScorePolicy` on this planner's network:
        the ``entries`` best-ranked entries' Gaussian score heads, σ scaled by ``temperature``."""
        from wamdiff_ros.planners.trajmoe.policy import GaussianScorePolicy

        if unknown:
            raise ValueError(f"trajmoe rl_policy: unknown settings {sorted(unknown)}")
        planner = TrajMoEPlanner(self.net, collect_stats=False, source=self.source)
        return GaussianScorePolicy(planner, entries=entries, temperature=temperature)

    def supervised_task(self, **settings: Any):
        from wamdiff_ros.planners.trajmoe.task import TrajMoETask

        return TrajMoETask(self, **settings)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "vocab_size": self.cfg.vocab_size,
            "entries_scored": self.cfg.inference_size,
            "experts": self.cfg.moe.num_experts,
            "top_k": self.cfg.moe.top_k,
        }


@register_untrained(FAMILY)
def fresh_planner(config: str | os.PathLike = "models/trajmoe_small.yaml", seed: int = 0, **options) -> TrajMoEPlanner:
    """An untrained planner of a config file (weights from ``seed``, global RNG untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = TrajMoENet(ModelConfig.from_yaml(config))
    return TrajMoEPlanner(net, source=f"untrained:{Path(config).name}", **options)


@register(FAMILY)
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> TrajMoEPlanner:
    unknown = sorted(set(options) - {"collect_stats"})
    if unknown:
        raise ValueError(f"{FAMILY}: unknown options {unknown} (known: ['collect_stats'])")
    net = TrajMoENet.load(path)
    check_rig(net.cfg.rig_obj, rig, f"checkpoint {path}")
    return TrajMoEPlanner(net, source=str(path), **options)


__all__ = ["FAMILY", "TRAINABLE", "TrajMoEPlanner", "fresh_planner", "load"]
