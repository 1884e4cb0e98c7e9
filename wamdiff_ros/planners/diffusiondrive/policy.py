"""Anchor GRPO policy of DiffusionDriveV2: G copies × K anchors per scene, ``steps`` DDIM steps with
eta 1 and scale-adaptive multiplicative noise.

Each step computes the DDIM mean μ (eta 1) from the network's clean-sample prediction and draws
``x_{t−1} = μ·(1 + σ_t·ε)`` with one ε for x and one for y per trajectory and σ_t = max(DDIM σ_t, σ_min):
the noise scales with the trajectory (a long fast trajectory spreads more than a short slow one).
The action of a step is the whole (T, 2) trajectory ``x_{t−1}``; given μ it lies on the line
``μ_a·(1 + σ ε_a)`` per axis a, so its log-density (along that line) is

    log p = Σ_a [ log N(ε̂_a; 0, 1) − log(σ_t·‖μ_a‖) ],   ε̂_a = ⟨μ_a, x_a − μ_a⟩ / (σ_t·‖μ_a‖²)

which is exact for the sampling weights (ε̂ = ε) and differentiable in μ for the updated ones.
The sample is noised to ``noise_t``; the schedule runs from ``max(noise_t, steps)`` down (10 steps need 10
distinct timesteps; DiffusionDrive's own loop also labels its first step above the noise level).

Answers are grouped by anchor (``Rollout.groups``): advantages are normalised among the G copies of
one anchor. The rollout's ``weights`` discount the steps by ``discount^(A−1−i)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wamdiff_ros.planners.diffusiondrive.anchors import SCALE
from wamdiff_ros.training.rl.policy import Rollout, trainable_by_prefix
from wamdiff_ros.types import Observation

TRAINABLE: dict[str, tuple[str, ...]] = {"all": (), "decoder": ("encoder.",)}
"""What RL may train -> parameter-name prefixes it freezes (``decoder``: everything but the scene encoder)."""

NORM_FLOOR = 1e-3
"""Floor of ‖μ_a‖ (normalised units) in the log-density: a standing-still axis gets no spread."""


def multiplicative_logprob(x_next: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(N, T, 2) actions, (N, T, 2) means, () or (N,) σ -> (N,) log-densities (see the module docstring)."""
    sigma = sigma.reshape(-1, 1) if sigma.dim() else sigma
    norm = (mu.pow(2).sum(1) + NORM_FLOOR**2).sqrt()
    eps = (mu * (x_next - mu)).sum(1) / (sigma * norm.pow(2))
    return (-0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - torch.log(sigma * norm)).sum(-1)


class AnchorGRPOPolicy:
    """See the module docstring.

    Args:
        planner: a DiffusionDrive planner on the torch network (validation plans with it).
        steps: DDIM steps of a rollout.
        sigma_min: floor of the multiplicative noise scale.
        discount: per-step weight ``discount^(A−1−i)`` of step i's log-probability in the objective.
    """

    def __init__(self, planner, steps: int = 10, sigma_min: float = 0.04, discount: float = 0.8):
        if steps < 1 or sigma_min <= 0 or not 0 < discount <= 1:
            raise ValueError(
                f"diffusiondrive rl policy: expected steps >= 1, sigma_min > 0, discount in (0, 1], got "
                f"{steps}, {sigma_min}, {discount}"
            )
        self.planner = planner
        self.net = planner.network()
        self.steps = int(steps)
        self.sigma_min = float(sigma_min)
        self.discount = float(discount)
        dif = planner.cfg.diffusion
        self.schedule = planner.scheduler.schedule(max(dif.noise_t, self.steps), self.steps, eta=1.0)
        self.sigmas = torch.tensor([max(sp.sigma, self.sigma_min) for sp in self.schedule])

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        """``group_size`` copies of every anchor: G·K answers, grouped by anchor."""
        p = self.planner
        images, ego = p.inputs(obs)
        k = len(p.anchors)
        a = p.anchors.repeat(group_size, 1, 1)
        n = len(a)
        t0 = p.cfg.diffusion.noise_t
        x = p.scheduler.add_noise(a, torch.randn(a.shape, generator=generator), torch.full((n,), t0))
        x_init = x.clone()
        actions = []
        with torch.no_grad():
            scene = self.net.encode(images, ego)
            for sp, sigma in zip(self.schedule, self.sigmas):
                x0, _ = self.net.denoise(scene, x[None], torch.tensor([float(sp.t)]))
                mu = sp.mean(x, x0[0])
                eps = torch.randn((n, 1, 2), generator=generator)
                x = mu * (1.0 + sigma * eps)
                actions.append(x)
        acts = torch.stack(actions, 1)
        weights = self.discount ** torch.arange(self.steps - 1, -1, -1, dtype=torch.float32)
        return Rollout(
            acts.reshape(n, self.steps, -1),
            torch.ones(n, self.steps, dtype=torch.bool),
            p.poses(x.numpy()),
            context=(images, ego, x_init),
            groups=torch.arange(n) % k,
            weights=weights.expand(n, -1).clone(),
        )

    def _means(self, rollout: Rollout, net) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, A, T, 2) actions and the DDIM means of every step under ``net`` (one batched forward)."""
        images, ego, x_init = rollout.context
        n = len(x_init)
        acts = rollout.actions.reshape(n, self.steps, -1, 2)
        x_in = torch.cat([x_init[:, None], acts[:, :-1]], 1).transpose(0, 1)
        scene = net.encode(images, ego).expand(self.steps, -1, -1)
        t = torch.tensor([float(sp.t) for sp in self.schedule])
        x0, _ = net.denoise(scene, x_in, t)
        mu = torch.stack([sp.mean(x_in[i], x0[i]) for i, sp in enumerate(self.schedule)], 1)
        return acts, mu

    def logprobs(self, rollout: Rollout, net=None) -> torch.Tensor:
        acts, mu = self._means(rollout, net or self.net)
        n = len(acts)
        cols = [multiplicative_logprob(acts[:, i], mu[:, i], self.sigmas[i]) for i in range(self.steps)]
        return torch.stack(cols, 1).reshape(n, self.steps)

    def imitation_loss(self, rollout: Rollout, target: np.ndarray) -> torch.Tensor:
        """L1 [m] between every answer's final clean-sample prediction and the logged future ``target``
        (T, ≥2) [m]: keeps the trajectories near the data while RL moves them. In metres, as the
        supervised regression (normalised units would weigh it 20-50 times less)."""
        images, ego, x_init = rollout.context
        n = len(x_init)
        acts = rollout.actions.reshape(n, self.steps, -1, 2)
        x_last = acts[:, -2] if self.steps > 1 else x_init
        scene = self.net.encode(images, ego)
        x0, _ = self.net.denoise(scene, x_last[None], torch.tensor([float(self.schedule[-1].t)]))
        scale = torch.from_numpy(SCALE).float()
        goal = torch.from_numpy(np.asarray(target, np.float64)[:, :2]).float()
        return (x0[0] * scale - goal).abs().mean()

    def trainable_parameters(self, net, which: str) -> list:
        if which not in TRAINABLE:
            raise ValueError(f"rl trainable: diffusiondrive trains one of {sorted(TRAINABLE)}, got {which!r}")
        return trainable_by_prefix(net, TRAINABLE[which])


__all__ = ["TRAINABLE", "AnchorGRPOPolicy", "multiplicative_logprob"]
