"""What the RL trainer needs from a planner family: a :class:`Policy` that samples a group of answers
for one logged scene as a :class:`Rollout`, and re-evaluates their per-step log-probabilities under
the current or the reference weights.

An answer is A actions: discrete tokens (a masked-diffusion or autoregressive decoder) or continuous
samples (the Gaussian steps of a diffusion sampler). Either way the family returns one log-probability
per action, so the objectives (GRPO, GSPO, k3 KL) see (G, A) log-probabilities and a (G, A) mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from wamdiff_ros.types import Observation


@dataclass
class Rollout:
    """G sampled answers for one scene.

    Attributes:
        actions: (G, A) int64 tokens, or (G, A, D) float continuous samples.
        mask: (G, A) bool, actions sampled by the policy (they count towards |y|).
        poses: (G, T, 3) decoded trajectories in base_link [m, m, rad].
        context: the family's private record of the scene and the sampling (re-evaluation reads it).
        groups: (G,) int sub-group of each answer: advantages are normalised within each (None: one group).
        weights: (G, A) float weight of each action in the objective, e.g. a discount over denoising
            steps (None: all 1).
        old_logp: (G, A) float32 log-probabilities under the sampling weights (set by the trainer).
        reward: ``scene -> (G,)`` rewards of the answers when the family rewards them itself (e.g. sampled
            scores against the scorer's labels); None: the run's scorer reward of ``poses``. The scorer's
            metrics of ``poses`` are logged either way.
        reward_offset: (G,) float added to each answer's scorer reward by the family (e.g. a penalty on
            the length of its reasoning); None: nothing added.
    """

    actions: torch.Tensor
    mask: torch.Tensor
    poses: np.ndarray
    context: Any = None
    groups: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    old_logp: torch.Tensor | None = field(default=None, repr=False)
    reward: Callable[[Any], np.ndarray] | None = field(default=None, repr=False)
    reward_offset: torch.Tensor | None = None

    def __post_init__(self):
        g = int(self.actions.shape[0])
        if self.actions.dim() not in (2, 3) or tuple(self.mask.shape) != tuple(self.actions.shape[:2]):
            raise ValueError(
                f"Rollout: expected actions (G, A) or (G, A, D) and mask (G, A), got {tuple(self.actions.shape)} "
                f"and {tuple(self.mask.shape)}"
            )
        if np.shape(self.poses)[0] != g or any(
            t is not None and tuple(t.shape) != (g,) for t in (self.groups, self.reward_offset)
        ):
            raise ValueError(f"Rollout: poses, groups and reward_offset must have G={g} rows")
        if self.weights is not None and tuple(self.weights.shape) != tuple(self.mask.shape):
            raise ValueError(
                f"Rollout: weights must be (G, A) = {tuple(self.mask.shape)}, got {tuple(self.weights.shape)}"
            )

    @property
    def group_size(self) -> int:
        return int(self.actions.shape[0])


class Policy(Protocol):
    """A planner family's RL policy (from :meth:`~wamdiff_ros.planners.base.Planner.rl_policy`).

    Attributes:
        net: the weights being trained (a torch module).
        planner: a planner over ``net`` (validation plans with it, checkpoints are saved through it).

    Optional method: ``kl(rollout, ref_net) -> (G, A)``, the exact per-action KL(π_θ ‖ π_ref)
    (differentiable) of a policy with a closed form (Gaussian heads); without it the trainer estimates the
    KL by k3 from :meth:`logprobs` under the reference.
    """

    net: torch.nn.Module
    planner: Any

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        """G stochastic answers for ``obs`` (no gradients)."""
        ...

    def logprobs(self, rollout: Rollout, net: torch.nn.Module | None = None) -> torch.Tensor:
        """(G, A) per-action log-probabilities of ``rollout`` under ``net`` (default: the policy's own
        weights; the KL reference passes its frozen copy); differentiable when gradients are enabled."""
        ...

    # Optional: ``imitation_loss(rollout, target) -> scalar tensor``, a differentiable distance of the
    # policy's answers to the logged future ``target`` (T, 3), used when the run's imitation weights are set.

    def trainable_parameters(self, net: torch.nn.Module, which: str) -> list:
        """Set ``requires_grad`` on ``net`` for what RL trains under the name ``which`` (``all`` trains
        everything); returns the trained parameters. ValueError naming the family's choices otherwise."""
        ...


def trainable_by_prefix(net: torch.nn.Module, frozen_prefixes: tuple[str, ...]) -> list:
    """Freeze the parameters whose names start with one of ``frozen_prefixes``; returns the others."""
    params = []
    for name, p in net.named_parameters():
        p.requires_grad_(not name.startswith(frozen_prefixes))
        if p.requires_grad:
            params.append(p)
    return params


__all__ = ["Policy", "Rollout", "trainable_by_prefix"]
