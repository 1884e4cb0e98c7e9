"""DiffusionDrive planner: truncated diffusion from the K anchors, then a mode pick.

Per frame: encode the scene once; noise the normalised anchors to ``noise_t`` and run the DDIM steps
(eta 0) with the ``step`` graph; then

- ``fast``: the anchor classifier picks one of the K denoised trajectories (DiffusionDrive);
- ``slow``: the DiffusionDriveV2 selector: ``copies`` stochastic samples (DDIM eta ``selector.eta``) of
  every anchor beside the deterministic ones, the coarse head keeps ``keep``, the fine head picks one;
- ``adaptive``: slow when ``budget_ms`` is None or at least the slow path's measured cost, else fast;
  always fast while the selector heads are untrained (``selector.trained`` false in the checkpoint),
  since they would pick at random.

The diffusion noise comes from a generator re-seeded with ``seed`` every plan, so a frame always gets
the same plan (replays and backend parity are exact).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wamdiff_ros.geometry import path_yaw, smooth_path
from wamdiff_ros.models.encoder import scene_inputs
from wamdiff_ros.planners.base import MODES, Planner, check_rig, register, register_untrained
from wamdiff_ros.planners.diffusiondrive.anchors import SCALE
from wamdiff_ros.planners.diffusiondrive.config import ModelConfig
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet
from wamdiff_ros.planners.diffusiondrive.scheduler import DDIMScheduler
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult, Trajectory

if TYPE_CHECKING:
    from wamdiff_ros.runtime.base import GraphModule, StepBackend

SLOW_COST_SMOOTHING = 0.2
"""Weight of the newest slow plan in the running estimate of the slow path's cost."""


def scheduler_of(cfg: ModelConfig) -> DDIMScheduler:
    d = cfg.diffusion
    return DDIMScheduler(d.train_steps, d.beta_start, d.beta_end)


class DiffusionDrivePlanner(Planner):
    """:class:`~wamdiff_ros.planners.base.Planner` for a :class:`DiffusionDriveNet`.

    Args:
        net: the network (put in eval mode here).
        mode: override of the config's ``mode``.
        seed: seed of the per-plan diffusion noise.
        source: where the model came from.
        backends: graph name -> backend running it (None: the torch network).
    """

    family = "diffusiondrive"
    modes = MODES

    def __init__(
        self,
        net: DiffusionDriveNet,
        mode: str | None = None,
        seed: int = 0,
        source: str = "",
        backends: dict[str, StepBackend] | None = None,
    ):
        self.net = net.eval()
        self.cfg: ModelConfig = net.cfg
        self.rig: Rig = self.cfg.rig_obj
        self.spec = self.cfg.spec
        self.history = self.cfg.encoder.history
        self.past_frame_s = self.cfg.encoder.past_frame_s
        self.scheduler = scheduler_of(self.cfg)
        self.seed = int(seed)
        self.source = source
        self._backends = backends
        self._mode = self.cfg.mode
        self.slow_cost_ms = 0.0
        if mode is not None:
            self.set_mode(mode)

    @property
    def anchors(self) -> torch.Tensor:
        """(K, T, 2) normalised anchors (the network's)."""
        return self.net.anchors

    # -- modes ---------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        super().set_mode(mode)
        self._mode = mode

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, rig: Rig | None = None, **options) -> DiffusionDrivePlanner:
        net = DiffusionDriveNet.load(path)
        check_rig(net.cfg.rig_obj, rig, f"checkpoint {path}")
        return cls(net, source=str(path), **options)

    # -- inputs and graph calls ----------------------------------------------------------------------
    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """images uint8 (1, C, H, W, 3) and ego features (1, F) of one observation; ValueError naming
        the camera when the images do not match the model's rig."""
        images, ego = scene_inputs(self.rig, obs, self.cfg.encoder)
        return images, ego

    def _run(self, name: str, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._backends is not None:
            out = self._backends[name].run(inputs)
            return tuple(out[k].float().cpu().clone() for k in out)
        with torch.inference_mode():
            if name == "encode":
                return (self.net.encode(inputs["images"], inputs["ego"]),)
            if name in ("step", "step_slow"):
                return self.net.denoise(inputs["scene"], inputs["x_t"], inputs["t"])
            score = self.net.fine_scores if name == "fine" else self.net.coarse_scores
            return (score(inputs["scene"], inputs["cand"]),)

    def denoise(
        self, scene: torch.Tensor, copies: int, steps: int, eta: float, generator: torch.Generator, graph: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Truncated reverse diffusion of ``copies`` × K noisy anchors (the first K without DDIM noise):
        returns the clean trajectories (copies·K, T, 2) normalised and the last step's logits (copies·K,)."""
        k = len(self.anchors)
        a = self.anchors.repeat(copies, 1, 1)
        t0 = self.cfg.diffusion.noise_t
        x = self.scheduler.add_noise(a, torch.randn(a.shape, generator=generator), torch.full((len(a),), t0))
        x0 = logits = x
        for sp in self.scheduler.schedule(t0, steps, eta):
            x0, logits = self._run(graph, scene=scene, x_t=x[None], t=torch.tensor([float(sp.t)]))
            x0, logits = x0[0], logits[0]
            x = sp.mean(x, x0)
            if sp.sigma:
                z = torch.randn(x.shape, generator=generator)
                z[:k] = 0.0
                x = x + sp.sigma * z
        return x0, logits

    # -- planning ------------------------------------------------------------------------------------
    def poses(self, u: np.ndarray) -> np.ndarray:
        """(..., T, 2) normalised waypoints -> (..., T, 3) poses [m, m, rad] with yaw along the path;
        with ``smooth_degree`` > 0 the least-squares polynomial path through the ego origin
        (:func:`~wamdiff_ros.geometry.smooth_path`), which removes the waypoint jitter the few
        denoising steps leave."""
        xy = np.asarray(u, np.float64) * SCALE
        if self.cfg.smooth_degree:
            return smooth_path(xy, self.spec.times, self.cfg.smooth_degree)
        return np.concatenate([xy, path_yaw(xy)[..., None]], axis=-1)

    def _slow_now(self, budget_ms: float | None) -> bool:
        if self._mode != "adaptive":
            return self._mode == "slow"
        return self.cfg.selector.trained and (budget_ms is None or budget_ms >= self.slow_cost_ms)

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        images, ego = self.inputs(obs)
        scene = self._run("encode", images=images, ego=ego)[0]
        t1 = time.perf_counter()
        timings["encode"] = (t1 - t_start) * 1e3
        g = torch.Generator().manual_seed(self.seed)
        dif, sel = self.cfg.diffusion, self.cfg.selector
        slow = self._slow_now(budget_ms)
        info: dict[str, Any] = {}
        if not slow:
            x0, logits = self.denoise(scene, 1, dif.steps, 0.0, g, "step")
            t2 = time.perf_counter()
            scores = torch.softmax(logits, 0)
            best = int(scores.argmax())
            cands = x0
        else:
            x0, logits = self.denoise(scene, sel.copies + 1, dif.slow_steps, sel.eta, g, "step_slow")
            t2 = time.perf_counter()
            coarse = self._run("coarse", scene=scene, cand=x0[None])[0][0]
            keep = coarse.topk(min(sel.keep, len(coarse))).indices
            fine = self._run("fine", scene=scene, cand=x0[keep][None])[0][0]
            cands, scores = x0[keep], torch.sigmoid(fine)
            best = int(fine.argmax())
            info["selector"] = {"candidates": len(x0), "kept": len(keep), "anchor": int(keep[best]) % len(self.anchors)}
            timings["select"] = (time.perf_counter() - t2) * 1e3
        timings["denoise"] = (t2 - t1) * 1e3
        poses = self.poses(cands.numpy())
        info.setdefault("anchor", best if not slow else info["selector"]["anchor"])
        total = (time.perf_counter() - t_start) * 1e3
        timings["total"] = total
        if slow:
            w = SLOW_COST_SMOOTHING if self.slow_cost_ms else 1.0
            self.slow_cost_ms = (1 - w) * self.slow_cost_ms + w * total
        return PlanResult(
            trajectory=Trajectory(poses[best], self.spec, "base_link", obs.stamp_ns),
            candidates=poses,
            candidate_scores=scores.double().numpy(),
            mode="slow" if slow else "fast",
            timings_ms=timings,
            info=info,
        )

    def warm_up(self, obs: Observation) -> float:
        """Plan once in each of fast and slow (measuring the slow path's cost); returns the last plan's time [ms]."""
        mode = self._mode
        try:
            for m in ("fast", "slow"):
                self._mode = m
                ms = super().warm_up(obs)
        finally:
            self._mode = mode
        return ms

    # -- network, export, RL -------------------------------------------------------------------------
    def network(self) -> DiffusionDriveNet:
        return self.net

    def checkpoint_config(self) -> dict:
        return self.cfg.to_dict()

    def save(self, folder: str | os.PathLike, meta: dict | None = None) -> Path:
        return Path(self.net.save(folder, meta))

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        from wamdiff_ros.planners.diffusiondrive.graphs import graph_modules

        return graph_modules(self.net, batch)

    def with_backends(self, backends: dict[str, StepBackend], info: dict) -> DiffusionDrivePlanner:
        out = DiffusionDrivePlanner(self.net, mode=self._mode, seed=self.seed, source=self.source, backends=backends)
        out.runtime = dict(info)
        return out

    def describe(self) -> dict:
        d = self.cfg.diffusion
        return {
            **super().describe(),
            "anchors": self.cfg.num_anchors,
            "diffusion": {"noise_t": d.noise_t, "steps": d.steps, "slow_steps": d.slow_steps},
        }

    def rl_policy(self, temperature: float = 1.0, steps: int | None = None, seed: int = 0, **unknown: Any):
        """:class:`~wamdiff_ros.planners.diffusiondrive.policy.AnchorGRPOPolicy` around this planner's
        torch network (``temperature`` scales the noise floor σ_min; ``steps`` None: 10)."""
        from wamdiff_ros.planners.diffusiondrive.policy import AnchorGRPOPolicy

        if unknown:
            raise ValueError(f"diffusiondrive rl_policy: unknown settings {sorted(unknown)}")
        planner = DiffusionDrivePlanner(self.net, mode="fast", seed=seed, source=self.source)
        return AnchorGRPOPolicy(planner, steps=steps or 10, sigma_min=0.04 * temperature)

    def supervised_task(self, **settings: Any):
        from wamdiff_ros.planners.diffusiondrive.task import DiffusionDriveTask

        return DiffusionDriveTask(self, **settings)


@register_untrained("diffusiondrive")
def fresh_planner(config: str | os.PathLike = "models/diffusiondrive_small.yaml", seed: int = 0, **options):
    """An untrained planner of a config file (benchmarks, export, tests), labelled ``untrained``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = DiffusionDriveNet(ModelConfig.from_yaml(config))
    return DiffusionDrivePlanner(net, source=f"untrained:{Path(config).name}", **options)


@register("diffusiondrive")
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> DiffusionDrivePlanner:
    return DiffusionDrivePlanner.from_checkpoint(path, rig=rig, **options)


__all__ = ["DiffusionDrivePlanner", "fresh_planner", "load", "scheduler_of"]
