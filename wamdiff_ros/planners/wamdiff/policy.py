"""WAM-Diff's RL policy: the fast path (trajectory block) as a stochastic policy over tokens.

An answer's likelihood under masked diffusion is the product, over decoding steps, of the
probabilities of the tokens revealed at that step given the partial answer before it (tokens revealed
earlier, ``[MASK]`` elsewhere). Sampling records only the step at which each token was revealed
(``step_of``, kept in the rollout's context); the partial answer of step k is then every token with
``step_of < k``, so re-evaluation rebuilds all K partial answers of all G samples and scores them in
one batched model call against the scene prefix, which is encoded once (with gradients for the
trained weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wamdiff_ros.planners.wamdiff.config import ORDERS
from wamdiff_ros.planners.wamdiff.masked_diffusion import decode_block
from wamdiff_ros.planners.wamdiff.planner import TRAINABLE
from wamdiff_ros.training.rl.policy import Rollout, trainable_by_prefix
from wamdiff_ros.types import Observation


@dataclass
class WamDiffContext:
    """What re-evaluation of a WAM-Diff rollout needs: the network inputs of the scene and, per
    answer token, the decoding step that revealed it ((G, A) int64, -1: given, not sampled)."""

    images: torch.Tensor
    ego: torch.Tensor
    prompt: torch.Tensor
    step_of: torch.Tensor


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
        return Rollout(res.ids, res.step_of >= 0, poses, WamDiffContext(images, ego, prompt, res.step_of))

    def logprobs(self, rollout: Rollout, net: torch.nn.Module | None = None) -> torch.Tensor:
        net = self.net if net is None else net
        lay = net.layout
        ctx: WamDiffContext = rollout.context
        ids, step_of = rollout.actions, ctx.step_of
        g, a = ids.shape
        k = self.steps
        was_training = net.training
        net.eval()
        try:
            prefix_kv, _, _ = net.encode(ctx.images, ctx.ego, ctx.prompt)
            known = step_of[None] < torch.arange(k)[:, None, None]  # given tokens (-1) always known
            states = torch.where(known, ids[None], torch.full_like(ids[None], self._mask_id))
            kv = prefix_kv.expand(-1, -1, k * g, -1, -1, -1)
            logits, _, _ = net.step(kv, states.reshape(k * g, a), lay.traj_offset)
        finally:
            net.train(was_training)
        logits = logits.float().masked_fill(~self._allowed, float("-inf")) / self.temperature
        token_logp = logits.log_softmax(-1).gather(-1, ids.repeat(k, 1)[..., None])
        token_logp = token_logp.view(k, g, a)
        at = step_of.clamp_min(0)[None]
        return token_logp.gather(0, at).squeeze(0).masked_fill(~rollout.mask, 0.0)

    def trainable_parameters(self, net: torch.nn.Module, which: str) -> list:
        """Set ``requires_grad`` per ``which`` (:data:`~wamdiff_ros.planners.wamdiff.planner.TRAINABLE`);
        returns the trained parameters."""
        if which not in TRAINABLE:
            raise ValueError(f"rl trainable: expected one of {sorted(TRAINABLE)} for wamdiff, got {which!r}")
        return trainable_by_prefix(net, TRAINABLE[which])


__all__ = ["WamDiffContext", "WamDiffPolicy"]
