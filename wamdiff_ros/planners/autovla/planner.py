"""AutoVLA planner: autoregressive action tokens with model-chosen fast/slow thinking.

Per frame: prefill the scene and prompt; the model's first token chooses slow (``[THINK]``: reasoning,
then actions) or fast (``[ACT]``: actions only). The shared :class:`~wamdiff_ros.planners.gate.FastSlowGate`
sees P([THINK]) as its complexity probability (``theta`` 0.5 = the model's argmax) and only vetoes or
shortens a slow pass that would not fit ``budget_ms``; a forced mode overrides the model.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wamdiff_ros.models.encoder import scene_inputs
from wamdiff_ros.planners.autovla.config import FAMILY, ModelConfig
from wamdiff_ros.planners.autovla.decoding import Answer, decode_answer
from wamdiff_ros.planners.autovla.net import REASON, AutoVLANet
from wamdiff_ros.planners.base import MODES, Planner, check_rig, register, register_untrained
from wamdiff_ros.planners.gate import FastSlowGate, SlowStep, seed_slow_cost
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult, Trajectory

if TYPE_CHECKING:
    from wamdiff_ros.runtime.base import GraphModule, StepBackend


class AutoVLAPlanner(Planner):
    """:class:`~wamdiff_ros.planners.base.Planner` over an :class:`AutoVLANet` (or its graphs on a backend).

    Args:
        net: the network (or :class:`~wamdiff_ros.planners.autovla.graphs.BackendNet`).
        mode: override of ``gate.mode``.
        temperature: 0 = greedy decoding; > 0 samples (RL rollouts).
        seed: seed of the sampling generator.
    """

    family = FAMILY
    modes = MODES

    def __init__(self, net, mode: str | None = None, temperature: float = 0.0, seed: int = 0, source: str = ""):
        self.net = net.eval()
        self.cfg: ModelConfig = net.cfg
        self.rig: Rig = self.cfg.rig_obj
        self.spec = self.cfg.spec
        self.history = self.cfg.encoder.history
        self.past_frame_s = self.cfg.encoder.past_frame_s
        self.gate = FastSlowGate(
            dataclasses.replace(self.cfg.gate), (SlowStep("reasoning", self.cfg.layout.reasoning_len, extra_calls=1),)
        )
        if mode is not None:
            self.set_mode(mode)
        self.temperature = float(temperature)
        self.generator = torch.Generator().manual_seed(seed)
        self.source = source
        self.runtime: dict = {}

    @property
    def kind_masks(self) -> torch.Tensor:
        """(5, V) legal tokens per kind of answer position (follows a codebook refitted after construction)."""
        return self.net.kind_masks()

    @property
    def mode(self) -> str:
        return self.gate.cfg.mode

    def set_mode(self, mode: str) -> None:
        super().set_mode(mode)
        self.gate.cfg.mode = mode

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images uint8 (1, C, H, W, 3), ego features (1, F), prompt ids (1, P); ValueError naming the
        camera when the images do not fit the model's rig."""
        images, ego = scene_inputs(self.rig, obs, self.cfg.encoder)
        prompt = torch.from_numpy(self.net.prompt_ids(obs.command, obs.instruction))[None]
        return images, ego, prompt

    def answer(self, inputs: tuple, choose_slow=None, on_reasoning_done=None) -> Answer:
        """Decode one answer for network ``inputs`` at this planner's temperature."""
        return decode_answer(
            self.net,
            self.kind_masks,
            inputs,
            self.spec.num_poses,
            self.cfg.layout.reasoning_len,
            self.temperature,
            self.generator,
            choose_slow,
            on_reasoning_done,
        )

    @torch.inference_mode()
    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t0 = time.perf_counter()
        inputs = self.inputs(obs)
        marks: dict[str, float] = {"preprocess": time.perf_counter()}
        decision = None

        def choose(p_think: float) -> tuple[bool, int]:
            nonlocal decision
            marks["prefill"] = time.perf_counter()
            decision = self.gate.decide(p_think, 1.0, budget_ms, (marks["prefill"] - t0) * 1e3)
            return decision.slow, decision.steps[0] if decision.slow else 0

        def reasoning_done() -> None:
            marks["reasoning"] = time.perf_counter()

        ans = self.answer(inputs, choose, reasoning_done)
        end = time.perf_counter()
        timings = {
            "preprocess": (marks["preprocess"] - t0) * 1e3,
            "prefill": (marks["prefill"] - marks["preprocess"]) * 1e3,
        }
        if ans.slow:
            timings["reasoning"] = (marks["reasoning"] - marks["prefill"]) * 1e3
            self.gate.record_slow_pass({"reasoning": timings["reasoning"]}, (max(1, ans.reasoning_words),))
        timings["actions"] = (end - marks.get("reasoning", marks["prefill"])) * 1e3
        timings["total"] = (end - t0) * 1e3
        poses = self.net.codebook.decode(np.array(ans.actions))
        reasoning = self.net.text.decode(
            [t for t, k in zip(ans.tokens, ans.kinds) if k == REASON and t != self.net.act_id]
        )
        probs = np.array(ans.action_probs)
        info: dict[str, Any] = {
            "p_think": ans.p_think,
            "p_complex": ans.p_think,  # the gate's inputs, as `wamdiff eval --calibrate-gate` reads them
            "fast_confidence": 1.0,
            "gate": decision.reason if decision else "",
            "model_choice": "slow" if ans.p_think > 0.5 else "fast",
            "actions": ans.actions,
            "decode_calls": ans.decode_calls,
            "model": self.source or "untrained",
        }
        if budget_ms is not None:
            info["over_budget"] = timings["total"] > budget_ms
        return PlanResult(
            trajectory=Trajectory(poses, spec=self.spec, frame="base_link", stamp_ns=obs.stamp_ns),
            candidates=poses[None],
            candidate_scores=np.array([float(np.exp(np.log(probs).mean()))]),
            mode="slow" if ans.slow else "fast",
            reasoning=reasoning,
            confidences=probs,
            timings_ms=timings,
            info=info,
        )

    def warm_up(self, obs: Observation, passes: int = 2) -> float:
        """Plan ``obs`` ``passes`` times in slow mode (seeding the gate's slow-cost estimate), then once fast."""
        seed_slow_cost(self, self.gate, obs, passes)
        return super().warm_up(obs)

    # -- network, export, RL, training -------------------------------------------------------------------
    def network(self) -> AutoVLANet:
        return self.net if isinstance(self.net, AutoVLANet) else self.net.torch_net

    def checkpoint_config(self) -> dict:
        return self.network().config_dict()

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        from wamdiff_ros.planners.autovla.graphs import graph_modules

        return graph_modules(self.network(), batch)

    def with_backends(self, backends: dict[str, StepBackend], info: dict) -> AutoVLAPlanner:
        from wamdiff_ros.planners.autovla.graphs import BackendNet

        out = AutoVLAPlanner(BackendNet(self.network(), backends), self.mode, self.temperature, source=self.source)
        out.generator = self.generator
        out.runtime = dict(info)
        return out

    def describe(self) -> dict:
        cb = self.network().codebook
        return {**super().describe(), "codebook": {"tokens": len(cb), "box": dataclasses.asdict(cb.box)}}

    def rl_policy(self, temperature: float = 1.0, seed: int = 0, **settings: Any):
        """:class:`~wamdiff_ros.planners.autovla.policy.AutoVLAPolicy` sampling whole answers (the model
        chooses its mode) from this planner's torch network."""
        from wamdiff_ros.planners.autovla.policy import AutoVLAPolicy

        return AutoVLAPolicy(self.network(), temperature, seed, source=self.source, **settings)

    def supervised_task(self, **settings: Any):
        from wamdiff_ros.planners.autovla.task import AutoVLATask

        return AutoVLATask(self, **settings)


@register_untrained(FAMILY)
def fresh_planner(
    config: str | os.PathLike = "models/autovla_small.yaml", vocab: list[str] | None = None, seed: int = 0, **options
) -> AutoVLAPlanner:
    """An untrained planner of a model config file (weights from ``seed``, global RNG untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = AutoVLANet(ModelConfig.from_yaml(config, vocab=vocab))
    return AutoVLAPlanner(net, source=f"untrained:{Path(config).name}", seed=seed, **options)


@register(FAMILY)
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> AutoVLAPlanner:
    net = AutoVLANet.load(path)
    check_rig(net.cfg.rig_obj, rig, f"checkpoint {path}")
    unknown = set(options) - {"mode", "temperature", "seed"}
    if unknown:
        raise ValueError(f"{FAMILY}: unknown options {sorted(unknown)} (known: mode, temperature, seed)")
    return AutoVLAPlanner(net, source=str(path), **options)


__all__ = ["AutoVLAPlanner", "fresh_planner", "load"]
