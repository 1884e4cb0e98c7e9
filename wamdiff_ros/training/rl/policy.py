"""Policies for RL fine-tuning: sample a group of answers for one logged scene, and re-evaluate the
per-token log-probabilities of those answers under the current or the reference weights.

For masked diffusion (WAM-Diff) an answer's likelihood is the product, over decoding steps, of the
probabilities of the tokens revealed at that step given the partial answer before it (tokens revealed
earlier, ``[MASK]`` elsewhere). Sampling records only the step at which each token was revealed; the
partial answer of step k is then every token with ``step_of < k``, so re-evaluation rebuilds all K
partial answers of all G samples and scores them in one batched model call against the scene prefix,
which is encoded once (with gradients for the trained weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from wamdiff_ros.models.config import ORDERS
from wamdiff_ros.models.masked_diffusion import decode_block
from wamdiff_ros.types import Observation


@dataclass
class Rollout:
    """G sampled answers for one scene.

    Attributes:
        ids: (G, A) int64 answer tokens.
        step_of: (G, A) int64 decoding step at which each token was revealed (-1: given, not sampled).
        mask: (G, A) bool, tokens sampled by the policy (they count towards |y|).
        poses: (G, T, 3) decoded trajectories in base_link [m, m, rad].
        context: the policy's inputs for this scene, reused by re-evaluation.
        old_logp: (G, A) float32 log-probabilities under the sampling weights (set by the trainer).
    """

    ids: torch.Tensor
    step_of: torch.Tensor
    mask: torch.Tensor
    poses: np.ndarray
    context: Any = None
    old_logp: torch.Tensor | None = field(default=None, repr=False)

    @property
    def group_size(self) -> int:
        return int(self.ids.shape[0])


class Policy(Protocol):
    """What the RL trainer needs from a planner family."""

    net: torch.nn.Module

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        """G stochastic answers for ``obs`` (no gradients)."""
        ...

    def logprobs(self, rollout: Rollout, net: torch.nn.Module | None = None) -> torch.Tensor:
        """(G, A) per-token log-probabilities of ``rollout`` under ``net`` (default: the policy's own
        weights); differentiable when gradients are enabled."""
        ...


class WamDiffPolicy:
    """WAM-Diff's fast path (trajectory block only) as a stochastic policy.

    Sampling is the planner's decoder with Gumbel-max sampling at ``temperature`` (the policy is
    ``softmax(logits / temperature)`` restricted to each position's legal tokens) and the remasking
    ``order`` (None: the model's scenario/command order map); ``steps`` decoding steps (None: the
    model's ``fast_steps``). Decoded trajectories are smoothed exactly as the planner does.
    """

    def __init__(self, planner, temperature: float = 1.0, order: str | None = None, steps: int | None = None):
        if not temperature > 0:
            raise ValueError(f"rl temperature: expected > 0 (sampling), got {temperature!r}")
        if order is not None and order not in ORDERS:
            raise ValueError(f"rl order: expected one of {ORDERS} or null, got {order!r}")
        self.planner = planner
        self.net = planner.net
        self.temperature = float(temperature)
        self.order = order
        self.steps = int(steps or planner.cfg.decoding.fast_steps)
        if self.steps < 1:
            raise ValueError(f"rl steps: expected >= 1, got {steps!r}")
        space = self.net.space
        self._mask_id = space.text.mask_id
        self._allowed = torch.from_numpy(space.trajectory_allowed())

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        net, lay = self.net, self.net.layout
        images, ego, prompt = self.planner.inputs(obs)
        order = self.order or self.planner.cfg.decoding.order_for(obs.command, self.planner.scenario)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                prefix_kv, _, _ = net.encode(images, ego, prompt)
                kv = prefix_kv.expand(-1, -1, group_size, -1, -1, -1)

                def step(ids):
                    return net.step(kv, ids, lay.traj_offset)[0]

                ids = torch.full((group_size, lay.traj_len), self._mask_id, dtype=torch.long)
                res = decode_block(
                    step, ids, self._mask_id, self.steps, order, self._allowed, None, None, self.temperature, generator
                )
        finally:
            net.train(was_training)
        poses = np.stack([self.planner.poses(row, obs.ego) for row in res.ids.numpy()])
        return Rollout(res.ids, res.step_of, res.step_of >= 0, poses, context=(images, ego, prompt))

    def logprobs(self, rollout: Rollout, net: torch.nn.Module | None = None) -> torch.Tensor:
        net = self.net if net is None else net
        lay = net.layout
        images, ego, prompt = rollout.context
        g, a = rollout.ids.shape
        k = self.steps
        was_training = net.training
        net.eval()
        try:
            prefix_kv, _, _ = net.encode(images, ego, prompt)
            known = rollout.step_of[None] < torch.arange(k)[:, None, None]  # given tokens (-1) always known
            states = torch.where(known, rollout.ids[None], torch.full_like(rollout.ids[None], self._mask_id))
            kv = prefix_kv.expand(-1, -1, k * g, -1, -1, -1)
            logits, _, _ = net.step(kv, states.reshape(k * g, a), lay.traj_offset)
        finally:
            net.train(was_training)
        logits = logits.float().masked_fill(~self._allowed, float("-inf")) / self.temperature
        token_logp = logits.log_softmax(-1).gather(-1, rollout.ids.repeat(k, 1)[..., None])
        token_logp = token_logp.view(k, g, a)
        at = rollout.step_of.clamp_min(0)[None]
        return token_logp.gather(0, at).squeeze(0).masked_fill(~rollout.mask, 0.0)


__all__ = ["Policy", "Rollout", "WamDiffPolicy"]
