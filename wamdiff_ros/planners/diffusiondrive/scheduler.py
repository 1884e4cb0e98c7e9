"""DDIM noise scheduler of truncated diffusion, separate from the network (which only predicts x0).

Scaled-linear betas over ``train_steps`` (DiffusionDrive: 1000, ``beta = linspace(√β₀, √β₁)²``);
``add_noise`` is the forward process ``x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε``; ``step`` is DDIM (Song et al.)
with the network's clean-sample prediction:

    ε̂ = (x_t − √ᾱ_t·x̂0) / √(1 − ᾱ_t)
    σ_t = eta · √((1 − ᾱ_prev) / (1 − ᾱ_t)) · √(1 − ᾱ_t / ᾱ_prev)
    μ = √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ_t²)·ε̂,     x_prev = μ + σ_t·z

The step after the last timestep has ᾱ_prev = 1 (x_prev = x̂0), as diffusers' ``set_alpha_to_one``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StepParams:
    """Coefficients of one DDIM step from ``t`` to ``prev`` (``prev`` = −1: the clean sample)."""

    t: int
    prev: int
    alpha_t: float
    alpha_prev: float
    sigma: float

    def mean(self, x_t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The DDIM mean μ of ``x_prev`` given ``x_t`` and the predicted clean sample ``x0``."""
        eps = (x_t - self.alpha_t**0.5 * x0) / max(1.0 - self.alpha_t, 1e-12) ** 0.5
        return self.alpha_prev**0.5 * x0 + max(1.0 - self.alpha_prev - self.sigma**2, 0.0) ** 0.5 * eps


class DDIMScheduler:
    """Scaled-linear-beta DDIM over ``train_steps`` timesteps (see the module docstring)."""

    def __init__(self, train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if train_steps < 2 or not 0 < beta_start < beta_end < 1:
            raise ValueError(
                f"DDIMScheduler: expected train_steps >= 2 and 0 < beta_start < beta_end < 1, got "
                f"{train_steps}, {beta_start}, {beta_end}"
            )
        self.train_steps = int(train_steps)
        betas = np.linspace(beta_start**0.5, beta_end**0.5, train_steps, dtype=np.float64) ** 2
        self.alphas_cumprod = np.cumprod(1.0 - betas)

    def alpha(self, t: int) -> float:
        """ᾱ_t (1 for t < 0: the clean sample)."""
        if t >= self.train_steps:
            raise ValueError(f"DDIM timestep: expected < {self.train_steps}, got {t}")
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process at integer timesteps ``t`` (broadcast over ``x0``'s leading dim)."""
        a = torch.as_tensor(self.alphas_cumprod, dtype=x0.dtype, device=x0.device)[t.long()]
        a = a.view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    @staticmethod
    def timesteps(start: int, steps: int) -> list[int]:
        """``steps`` distinct timesteps ``round(start·(1 − i/steps))`` from ``start`` down to >= 1:
        start 8, 2 steps -> [8, 4]; start 10, 10 steps -> [10, 9, …, 1]."""
        if not 1 <= steps <= start:
            raise ValueError(f"DDIM timesteps: expected 1 <= steps <= start, got {steps} steps from t = {start}")
        return [round(start * (1.0 - i / steps)) for i in range(steps)]

    def step_params(self, t: int, prev: int, eta: float = 0.0) -> StepParams:
        a_t, a_prev = self.alpha(t), self.alpha(prev)
        sigma = eta * ((1.0 - a_prev) / (1.0 - a_t)) ** 0.5 * (1.0 - a_t / a_prev) ** 0.5 if eta else 0.0
        return StepParams(t, prev, a_t, a_prev, float(sigma))

    def schedule(self, start: int, steps: int, eta: float = 0.0) -> list[StepParams]:
        """The steps of a truncated reverse process from ``start``: each step's ``prev`` is the next
        timestep, the last one's is −1 (the clean sample)."""
        ts = self.timesteps(start, steps)
        return [self.step_params(t, p, eta) for t, p in zip(ts, [*ts[1:], -1])]


__all__ = ["DDIMScheduler", "StepParams"]
