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

import numpy as np
import torch

from wamdiff_ros.models.config import GATE_MODES, ModelConfig
from wamdiff_ros.models.encoder import ego_features
from wamdiff_ros.models.masked_diffusion import DecodeResult, decode_block
from wamdiff_ros.models.moe import routing_stats
from wamdiff_ros.models.net import WamDiffNet
from wamdiff_ros.models.trajectory_tokenizer import smooth_path
from wamdiff_ros.planners.base import check_rig, register
from wamdiff_ros.planners.reasoning import ReasoningGate
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import EgoState, Observation, PlanResult, Trajectory


class WamDiffPlanner:
    """:class:`wamdiff_ros.planners.base.Planner` for a :class:`WamDiffNet`.

    Attributes ``rig``, ``spec`` (trajectory grid) and ``history`` (past poses used from
    ``Observation.ego_history``) tell a planning loop what to feed.

    Args:
        net: the network (put in eval mode here).
        mode: override of ``gate.mode`` (``adaptive`` | ``fast`` | ``slow``).
        scenario: scenario name for ``decoding.order_map`` (the world or a map layer may know it).
        collect_stats: compute MoE routing statistics into ``PlanResult.moe``.
        seed: seed of the generator used by the ``random`` order and temperature sampling.
        source: where the model came from (recorded in ``PlanResult.info``).
    """

    family = "wamdiff"

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
        dec = self.cfg.decoding
        self.gate = ReasoningGate(dataclasses.replace(self.cfg.gate), steps=(dec.reasoning_steps, dec.slow_steps))
        if mode is not None:
            self.mode = mode
        self.scenario = scenario
        self.collect_stats = collect_stats
        self.source = source
        self.generator = torch.Generator().manual_seed(seed)
        space, lay = net.space, net.layout
        self._mask_id = space.text.mask_id
        self._traj_allowed = torch.from_numpy(space.trajectory_allowed())
        self._text_allowed = torch.from_numpy(space.text_allowed(lay.text_len))
        self._quant = space.traj.max_error()

    @property
    def mode(self) -> str:
        return self.gate.cfg.mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in GATE_MODES:
            raise ValueError(f"WamDiffPlanner.mode: expected one of {GATE_MODES}, got {value!r}")
        self.gate.cfg.mode = value

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, rig: Rig | None = None, **options) -> WamDiffPlanner:
        net = WamDiffNet.load(path)
        check_rig(net.cfg.rig_obj, rig, f"checkpoint {path}")
        return cls(net, source=str(path), **options)

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network inputs of one observation: images uint8 (1, C, H, W, 3), ego features (1, F), prompt
        ids (1, P); ValueError naming the camera when the images do not match the model's rig."""
        names = self.rig.names
        if set(obs.images) != set(names):
            raise ValueError(
                f"Observation.images: expected cameras {names} (the model's rig), got {sorted(obs.images)}"
            )
        for cam in self.rig.cameras:
            shape = obs.images[cam.name].shape
            if shape != (cam.height, cam.width, 3):
                raise ValueError(
                    f"Observation.images[{cam.name!r}]: expected {cam.height}×{cam.width}×3 (rig), got {shape}"
                )
        images = torch.from_numpy(np.stack([obs.images[n] for n in names]))[None]
        ego = torch.from_numpy(ego_features(obs.ego, obs.ego_history, self.cfg.encoder.history))[None]
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
            self.gate.record_slow_pass(timings["reasoning"], timings["slow_decode"], decision.steps)
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
        last pass, which is returned.

        The first run of each graph is slower (allocations, cold caches: 77 ms against 60 ms warm for the
        default model here); an estimate seeded by it made the gate refuse every slow pass within an 80 ms
        budget on a slower day, and a refused slow pass is never measured again.
        """
        if passes < 1:
            raise ValueError(f"WamDiffPlanner.warm_up: passes must be >= 1, got {passes}")
        mode = self.mode
        self.mode = "slow"
        try:
            for _ in range(passes):
                self.gate.forget_slow_cost()
                self.plan(obs, None)
        finally:
            self.mode = mode
        return self.gate.slow_cost_ms

    def model_size_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.net.parameters())


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


__all__ = ["WamDiffPlanner", "fresh_planner", "load"]
