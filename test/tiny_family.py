"""A planner family defined outside the package, to prove a family is one folder plus a registration:
a linear layer on per-camera mean colours and the ego's twist gives the T×3 poses directly. It has
one exportable graph (``forward``) and a Gaussian RL policy with continuous actions (each pose is
one action of D = 3 values)."""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from wamdiff_ros.models.checkpoint import load_checkpoint, load_state
from wamdiff_ros.planners.base import Planner, check_rig, register
from wamdiff_ros.rig import Rig
from wamdiff_ros.runtime.base import GraphModule
from wamdiff_ros.training.rl.policy import Rollout
from wamdiff_ros.types import Observation, PlanResult, Trajectory, TrajectorySpec

FAMILY = "tiny_linear"


class TinyNet(nn.Module):
    """images uint8 (B, C, H, W, 3), ego float32 (B, 3) -> poses (B, T, 3)."""

    def __init__(self, cameras: int, num_poses: int):
        super().__init__()
        self.num_poses = num_poses
        self.linear = nn.Linear(3 * cameras + 3, 3 * num_poses)

    def forward(self, images: torch.Tensor, ego: torch.Tensor) -> tuple[torch.Tensor]:
        pooled = images.float().mean(dim=(2, 3)).flatten(1) / 255.0
        return (self.linear(torch.cat([pooled, ego], dim=1)).view(-1, self.num_poses, 3),)


class TinyPlanner(Planner):
    family = FAMILY

    def __init__(self, net: TinyNet, rig: Rig, spec: TrajectorySpec, source: str = "", backend=None):
        self.net = net.eval()
        self.rig = rig
        self.spec = spec
        self.source = source
        self._backend = backend

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        if set(obs.images) != set(self.rig.names):
            raise ValueError(f"Observation.images: expected cameras {self.rig.names}, got {sorted(obs.images)}")
        images = torch.from_numpy(np.stack([obs.images[n] for n in self.rig.names]))[None]
        ego = torch.tensor([[obs.ego.velocity[0], obs.ego.velocity[1], obs.ego.yaw_rate]], dtype=torch.float32)
        return images, ego

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t0 = time.perf_counter()
        images, ego = self.inputs(obs)
        if self._backend is None:
            with torch.inference_mode():
                poses = self.net(images, ego)[0]
        else:
            poses = self._backend.run({"images": images, "ego": ego})["poses"]
        poses = poses[0].float().cpu().double().numpy()
        return PlanResult(
            trajectory=Trajectory(poses, self.spec, "base_link", obs.stamp_ns),
            candidates=poses[None],
            candidate_scores=np.ones(1),
            mode="fast",
            timings_ms={"total": (time.perf_counter() - t0) * 1e3},
        )

    def network(self) -> TinyNet:
        return self.net

    def checkpoint_config(self) -> dict:
        return {"rig": self.rig.to_dict(), "spec": self.spec.to_dict()}

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        cam = self.rig.cameras[0]
        example = (
            torch.zeros(batch, len(self.rig.cameras), cam.height, cam.width, 3, dtype=torch.uint8),
            torch.zeros(batch, 3),
        )

        def draw(g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return torch.randint(0, 256, example[0].shape, generator=g, dtype=torch.uint8), torch.randn(
                example[1].shape, generator=g
            )

        return [GraphModule("forward", self.net, ("images", "ego"), ("poses",), example, draw)]

    def with_backends(self, backends: dict, info: dict) -> TinyPlanner:
        out = TinyPlanner(self.net, self.rig, self.spec, self.source, backends["forward"])
        out.runtime = dict(info)
        return out

    def rl_policy(self, temperature: float = 1.0, seed: int = 0, **_unused) -> GaussianPolicy:
        return GaussianPolicy(TinyPlanner(self.net, self.rig, self.spec, self.source), sigma=0.5 * temperature)


class GaussianPolicy:
    """Poses = the network's mean + N(0, sigma²) per coordinate; answers in two sub-groups."""

    def __init__(self, planner: TinyPlanner, sigma: float):
        self.planner = planner
        self.net = planner.net
        self.sigma = float(sigma)

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        images, ego = self.planner.inputs(obs)
        with torch.no_grad():
            mean = self.net(images, ego)[0]
        actions = mean + self.sigma * torch.randn((group_size, *mean.shape[1:]), generator=generator)
        mask = torch.ones(actions.shape[:2], dtype=torch.bool)
        groups = torch.arange(group_size) % 2
        return Rollout(actions, mask, actions.double().numpy(), context=(images, ego), groups=groups)

    def logprobs(self, rollout: Rollout, net: nn.Module | None = None) -> torch.Tensor:
        mean = (net or self.net)(*rollout.context)[0]
        return torch.distributions.Normal(mean, self.sigma).log_prob(rollout.actions).sum(-1)

    def trainable_parameters(self, net: nn.Module, which: str) -> list:
        if which != "all":
            raise ValueError(f"rl trainable: {FAMILY} trains 'all', got {which!r}")
        for p in net.parameters():
            p.requires_grad_(True)
        return list(net.parameters())


def save_tiny(folder: str | os.PathLike, rig: Rig, spec: TrajectorySpec | None = None, seed: int = 0):
    """A fresh tiny checkpoint folder (weights from ``seed``); returns it."""
    spec = spec or TrajectorySpec()
    torch.manual_seed(seed)
    return TinyPlanner(TinyNet(len(rig.cameras), spec.num_poses), rig, spec).save(folder)


@register(FAMILY)
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> TinyPlanner:
    if options:
        raise ValueError(f"{FAMILY}: unknown options {sorted(options)}")
    doc, tensors = load_checkpoint(path)
    cfg = doc["config"]
    model_rig = Rig.from_dict(cfg["rig"], f"checkpoint {path}")
    check_rig(model_rig, rig, f"checkpoint {path}")
    spec = TrajectorySpec.from_dict(cfg["spec"])
    net = TinyNet(len(model_rig.cameras), spec.num_poses)
    load_state(net, tensors, str(path))
    return TinyPlanner(net, model_rig, spec, source=str(path))
