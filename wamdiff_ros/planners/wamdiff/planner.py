"""WAM-Diff planner: masked discrete diffusion over trajectory tokens, with adaptive fast/slow reasoning.

Per frame: encode the scene and prompt once (prefix key/value cache) → fast pass (trajectory block,
``fast_steps``) → gate → optionally the slow pass (reasoning text block, then the trajectory block
conditioned on it with ``slow_steps``). The remasking order of the trajectory comes from
``decoding.order_map`` by scenario or command (scenario-aware decoding). Decoding is constrained:
x positions can only take x-bin tokens, y positions y-bin tokens, text positions words/[EOS]/[PAD].
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wamdiff_ros.geometry import smooth_path
from wamdiff_ros.models.encoder import scene_inputs
from wamdiff_ros.models.moe import routing_stats
from wamdiff_ros.planners.base import MODES, Planner, check_rig, register, register_untrained
from wamdiff_ros.planners.gate import FastSlowGate, SlowStep, seed_slow_cost
from wamdiff_ros.planners.wamdiff.config import DecodingConfig, ModelConfig
from wamdiff_ros.planners.wamdiff.masked_diffusion import DecodeResult, decode_block
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import EgoState, Observation, PlanResult, Trajectory

if TYPE_CHECKING:
    from wamdiff_ros.runtime.base import GraphModule, StepBackend

TRAINABLE: dict[str, tuple[str, ...]] = {"all": (), "transformer": ("encoder.", "complexity.")}
"""What RL may train -> parameter-name prefixes it freezes (``transformer``: token embeddings and
transformer; the scene encoder and complexity head stay as trained)."""


def slow_path(decoding: DecodingConfig) -> tuple[SlowStep, SlowStep]:
    """What a slow pass costs the gate: reasoning steps plus the reasoning's key/value pass, then the
    trajectory steps (kept longest when the pass is shortened)."""
    return SlowStep("reasoning", decoding.reasoning_steps, extra_calls=1), SlowStep("trajectory", decoding.slow_steps)


class WamDiffPlanner(Planner):
    """:class:`~wamdiff_ros.planners.base.Planner` for a :class:`WamDiffNet` (or a
    :class:`~wamdiff_ros.planners.wamdiff.backend_net.BackendNet` running its graphs on a backend).

    Args:
        net: the network (put in eval mode here).
        mode: override of ``gate.mode`` (``adaptive`` | ``fast`` | ``slow``).
        scenario: scenario name for ``decoding.order_map`` (the world or a map layer may know it).
        collect_stats: compute MoE routing statistics into ``PlanResult.moe``.
        seed: seed of the generator used by the ``random`` order and temperature sampling.
        source: where the model came from (recorded in ``PlanResult.info``).
    """

    family = "wamdiff"
    modes = MODES

    def __init__(
        self,
        net: WamDiffNet,
        mode: str | None = None,
        scenario: str | None = None,
        collect_stats: bool = True,
        seed: int = 0,
        source: str = "",
    ):
        self.net = net.eval()
        self.cfg: ModelConfig = net.cfg
        self.rig: Rig = self.cfg.rig_obj
        self.spec = self.cfg.spec
        self.history = self.cfg.encoder.history
        self.past_frame_s = self.cfg.encoder.past_frame_s
        dec = self.cfg.decoding
        self.gate = FastSlowGate(dataclasses.replace(self.cfg.gate), slow_path(dec))
        if mode is not None:
            self.set_mode(mode)
        self.scenario = scenario
        self.collect_stats = collect_stats
        self.source = source
        self.runtime: dict = {}
        self.generator = torch.Generator().manual_seed(seed)
        space, lay = net.space, net.layout
        self._mask_id = space.text.mask_id
        self._traj_allowed = torch.from_numpy(space.trajectory_allowed())
        self._text_allowed = torch.from_numpy(space.text_allowed(lay.text_len))
        self._quant = space.traj.max_error()

    @property
    def mode(self) -> str:
        return self.gate.cfg.mode

    def set_mode(self, mode: str) -> None:
        super().set_mode(mode)
        self.gate.cfg.mode = mode

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, rig: Rig | None = None, **options) -> WamDiffPlanner:
        net = WamDiffNet.load(path)
        check_rig(net.cfg.rig_obj, rig, f"checkpoint {path}")
        return cls(net, source=str(path), **options)

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network inputs of one observation: images uint8 (1, C, H, W, 3), ego features (1, F), prompt
        ids (1, P); ValueError naming the camera when the images do not match the model's rig."""
        images, ego = scene_inputs(self.rig, obs, self.cfg.encoder)
        lay = self.net.layout
        prompt = torch.from_numpy(lay.prompt_ids(self.net.space.text, obs.command, obs.instruction, "plan"))[None]
        return images, ego, prompt

    def _decode(self, prefix_kv, offset, length, steps, order, allowed, calls) -> DecodeResult:
        dec = self.cfg.decoding

        def step(ids):
            logits, _, aux = self.net.step(prefix_kv, ids, offset, self.collect_stats)
            calls.append(aux)
            return logits

        ids = torch.full((1, length), self._mask_id, dtype=torch.long)
        return decode_block(
            step, ids, self._mask_id, steps, order, allowed, None, dec.threshold, dec.temperature, self.generator
        )

    def poses(self, ids: torch.Tensor | np.ndarray, ego: EgoState) -> np.ndarray:
        """(2T,) trajectory token ids planned from ``ego`` -> (T, 3) poses in base_link, smoothed as
        ``decoding.smooth_degree`` says."""
        poses = self.net.space.decode_trajectory(np.asarray(ids), ego)
        if self.cfg.decoding.smooth_degree:
            poses = smooth_path(poses, self.cfg.spec.times, self.cfg.decoding.smooth_degree)
        return poses

    def _trajectory(self, res: DecodeResult, obs: Observation) -> tuple[Trajectory, np.ndarray, np.ndarray]:
        poses = self.poses(res.ids[0].numpy(), obs.ego)
        tok = res.confidences[0].double().numpy()
        per_wp = np.sqrt(tok[0::2] * tok[1::2])
        return Trajectory(poses, spec=self.cfg.spec, frame="base_link", stamp_ns=obs.stamp_ns), per_wp, tok

    @torch.inference_mode()
    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = (now - since) * 1e3
            return now

        images, ego, prompt = self.inputs(obs)
        t = lap("preprocess", t0)
        calls: list[list[dict]] = []
        prefix_kv, complexity, aux = self.net.encode(images, ego, prompt, self.collect_stats)
        calls.append(aux)
        p_complex = float(torch.sigmoid(complexity[0]))
        t = lap("encode", t)
        dec, lay = self.cfg.decoding, self.net.layout
        order = dec.order_for(obs.command, self.scenario)
        info: dict = {"order": order, "p_complex": p_complex, "model": self.source or "untrained"}
        candidates, scores = [], []
        fast = None
        if self.mode != "slow":
            fast = self._decode(
                prefix_kv, lay.traj_offset, lay.traj_len, dec.fast_steps, order, self._traj_allowed, calls
            )
            fast_traj, fast_wp, fast_tok = self._trajectory(fast, obs)
            candidates.append(fast_traj.poses)
            scores.append(float(fast_tok.mean()))
            info["fast_steps"] = fast.steps
            t = lap("fast_decode", t)
        confidence = scores[0] if scores else 1.0
        decision = self.gate.decide(p_complex, confidence, budget_ms, (time.perf_counter() - t0) * 1e3)
        info.update(gate=decision.reason, fast_confidence=confidence, slow_cost_estimate_ms=decision.slow_cost_ms)
        reasoning = ""
        if decision.slow:
            reasoning_steps, slow_steps = decision.steps
            text = self._decode(
                prefix_kv,
                lay.text_offset,
                lay.text_len,
                reasoning_steps,
                dec.reasoning_order,
                self._text_allowed,
                calls,
            )
            reasoning = self.net.space.text.decode(text.ids[0].tolist())
            _, text_kv, aux = self.net.step(prefix_kv, text.ids, lay.text_offset, self.collect_stats)
            calls.append(aux)
            t = lap("reasoning", t)
            slow = self._decode(
                torch.cat([prefix_kv, text_kv], dim=4),
                lay.traj_offset,
                lay.traj_len,
                slow_steps,
                order,
                self._traj_allowed,
                calls,
            )
            traj, wp, tok = self._trajectory(slow, obs)
            candidates.append(traj.poses)
            scores.append(float(tok.mean()))
            info.update(reasoning_steps=text.steps, slow_steps=slow.steps)
            t = lap("slow_decode", t)
            self.gate.record_slow_pass(
                {"reasoning": timings["reasoning"], "trajectory": timings["slow_decode"]}, decision.steps
            )
        else:
            traj, wp, tok = fast_traj, fast_wp, fast_tok
        info["token_confidences"] = tok.tolist()
        info["quantisation_max_error_m"] = self._quant
        moe = routing_stats(calls, self.cfg.moe.routing) if self.collect_stats else {}
        timings["total"] = (time.perf_counter() - t0) * 1e3
        if budget_ms is not None:
            info["over_budget"] = timings["total"] > budget_ms
        return PlanResult(
            trajectory=traj,
            candidates=np.stack(candidates),
            candidate_scores=np.array(scores),
            mode="slow" if decision.slow else "fast",
            reasoning=reasoning,
            confidences=wp,
            timings_ms=timings,
            moe=moe,
            info=info,
        )

    def warm_up(self, obs: Observation, passes: int = 2) -> float:
        """Plan ``obs`` ``passes`` times in slow mode and seed the gate's slow-cost estimate [ms] with the
        last pass, which is returned. See :func:`~wamdiff_ros.planners.gate.seed_slow_cost`."""
        return seed_slow_cost(self, self.gate, obs, passes)

    # -- network, export, RL -------------------------------------------------------------------------
    def network(self) -> WamDiffNet:
        return self.net if isinstance(self.net, WamDiffNet) else self.net.torch_net

    def checkpoint_config(self) -> dict:
        net = self.network()
        return {**self.cfg.to_dict(), "text_tokens": list(net.space.text.tokens)}

    def save(self, folder: str | os.PathLike, meta: dict | None = None) -> Path:
        return Path(self.network().save(folder, meta))

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        from wamdiff_ros.planners.wamdiff.graphs import graph_modules

        return graph_modules(self.network(), batch)

    def with_backends(self, backends: dict[str, StepBackend], info: dict) -> WamDiffPlanner:
        """A planner with this one's network, options, gate settings and generator whose network calls
        go to ``backends`` (one per graph of :meth:`graphs`)."""
        from wamdiff_ros.planners.wamdiff.backend_net import BackendNet

        out = WamDiffPlanner(
            BackendNet(self.network(), backends),
            mode=self.mode,
            scenario=self.scenario,
            collect_stats=self.collect_stats,
            source=self.source,
        )
        out.generator = self.generator
        out.runtime = dict(info)
        return out

    def describe(self) -> dict:
        gate = self.cfg.gate
        quantisation = self.network().space.traj.report()
        return {**super().describe(), "gate": {"theta": gate.theta, "c_min": gate.c_min}, "quantisation": quantisation}

    def rl_policy(
        self,
        temperature: float = 1.0,
        order: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        **unknown: Any,
    ):
        """:class:`~wamdiff_ros.planners.wamdiff.policy.WamDiffPolicy` on the fast path of this planner's
        torch network (its planner plans fast without MoE statistics, drawing from ``seed``); ``order``
        and ``steps`` None take the model's."""
        from wamdiff_ros.planners.wamdiff.policy import WamDiffPolicy

        if unknown:
            raise ValueError(f"wamdiff rl_policy: unknown settings {sorted(unknown)}")
        planner = WamDiffPlanner(self.network(), mode="fast", collect_stats=False, seed=seed, source=self.source)
        return WamDiffPolicy(planner, temperature, order, steps)

    def supervised_task(self, mix: dict | None = None, **unknown: Any):
        """:class:`~wamdiff_ros.planners.wamdiff.training.WamDiffTask` training this planner's torch network
        (validated on its fast path without MoE statistics); ``mix``: the task sampling weights."""
        from wamdiff_ros.planners.wamdiff.training import WamDiffTask

        if unknown:
            raise ValueError(f"wamdiff supervised_task: unknown settings {sorted(unknown)} (known: ['mix'])")
        planner = WamDiffPlanner(self.network(), mode="fast", collect_stats=False, source=self.source)
        return WamDiffTask(planner, mix)


@register_untrained("wamdiff")
def fresh_planner(
    config: str | os.PathLike = "models/wamdiff_small.yaml", vocab: list[str] | None = None, seed: int = 0, **options
) -> WamDiffPlanner:
    """An untrained planner of a config file (for benchmarks and tests), labelled ``untrained``; its
    weights are drawn from ``seed`` without touching the global torch RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = WamDiffNet(ModelConfig.from_yaml(config, vocab=vocab))
    return WamDiffPlanner(net, source=f"untrained:{Path(config).name}", seed=seed, **options)


@register("wamdiff")
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> WamDiffPlanner:
    return WamDiffPlanner.from_checkpoint(path, rig=rig, **options)


__all__ = ["TRAINABLE", "WamDiffPlanner", "fresh_planner", "load", "slow_path"]
