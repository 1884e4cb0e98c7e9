"""AutoVLA's RL policy: whole answers sampled autoregressively (the model chooses fast or slow by its
first token), per-token log-probabilities re-evaluated by one teacher-forced pass.

Each answer's reward gets AutoVLA's reasoning-length penalty through ``Rollout.reward_offset``:
``−weight · sigmoid((len(text) − pivot) · slope)`` for an answer that reasoned (len in characters), 0 for
a fast one; with the reward ``PDMS · 10`` (``reward.scale``) this is AutoVLA's GRPO reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from wamdiff_ros.planners.autovla.decoding import Answer, decode_answer
from wamdiff_ros.planners.autovla.net import PAD, REASON
from wamdiff_ros.training.rl.policy import Rollout, trainable_by_prefix
from wamdiff_ros.types import Observation

TRAINABLE: dict[str, tuple[str, ...]] = {"all": (), "transformer": ("encoder.",)}
"""What RL may train -> parameter-name prefixes it freezes."""


@dataclass(frozen=True)
class LengthPenalty:
    """``weight · sigmoid((len(text) − pivot) · slope)`` subtracted from a slow answer's reward (AutoVLA:
    0.3, 400 characters, 0.002)."""

    weight: float = 0.3
    pivot: float = 400.0
    slope: float = 0.002

    def __call__(self, text: str, slow: bool) -> float:
        if not slow:
            return 0.0
        return self.weight / (1.0 + math.exp(-(len(text) - self.pivot) * self.slope))


@dataclass
class AutoVLAContext:
    """Network inputs of the scene (batch 1) and the (G, A) kind of every answer position."""

    inputs: tuple
    kinds: torch.Tensor


class AutoVLAPolicy:
    """Samples G answers at ``temperature`` (restricted to each position's legal tokens, the model's
    own mode choice); ``planner`` (greedy, adaptive) validates and saves."""

    def __init__(
        self,
        net,
        temperature: float = 1.0,
        seed: int = 0,
        source: str = "",
        order: str | None = None,
        steps: int | None = None,
        length_penalty: LengthPenalty = LengthPenalty(),
    ):
        from wamdiff_ros.planners.autovla.planner import AutoVLAPlanner

        if not temperature > 0:
            raise ValueError(f"rl temperature: expected > 0 (sampling), got {temperature!r}")
        if order is not None or steps is not None:
            raise ValueError(f"autovla rl: 'order' and 'steps' do not apply (autoregressive), got {order!r}, {steps!r}")
        self.net = net
        self.planner = AutoVLAPlanner(net, seed=seed, source=source)
        self.temperature = float(temperature)
        self.length_penalty = length_penalty

    @property
    def kind_masks(self) -> torch.Tensor:
        return self.net.kind_masks()

    def _answer(self, inputs, generator) -> Answer:
        cfg = self.net.cfg
        return decode_answer(
            self.net, self.kind_masks, inputs, cfg.spec.num_poses, cfg.layout.reasoning_len, self.temperature, generator
        )

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        net = self.net
        inputs = self.planner.inputs(obs)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                answers = [self._answer(inputs, generator) for _ in range(group_size)]
        finally:
            net.train(was_training)
        a = max(len(x.tokens) for x in answers)
        tokens = torch.full((group_size, a), net.text.pad_id, dtype=torch.long)
        kinds = torch.full((group_size, a), PAD, dtype=torch.long)
        mask = torch.zeros((group_size, a), dtype=torch.bool)
        offsets = []
        for i, x in enumerate(answers):
            n = len(x.tokens)
            tokens[i, :n] = torch.tensor(x.tokens)
            kinds[i, :n] = torch.tensor(x.kinds)
            mask[i, :n] = torch.tensor(x.chosen)
            text = net.text.decode([t for t, k in zip(x.tokens, x.kinds) if k == REASON and t != net.act_id])
            offsets.append(-self.length_penalty(text, x.slow))
        poses = net.codebook.decode(np.array([x.actions for x in answers]))
        return Rollout(
            tokens,
            mask,
            poses,
            AutoVLAContext(inputs, kinds),
            reward_offset=torch.tensor(offsets, dtype=torch.float64),
        )

    def logprobs(self, rollout: Rollout, net: torch.nn.Module | None = None) -> torch.Tensor:
        net = self.net if net is None else net
        ctx: AutoVLAContext = rollout.context
        g = rollout.group_size
        images, ego, prompt = (x.expand(g, *x.shape[1:]) for x in ctx.inputs)
        was_training = net.training
        net.eval()
        try:
            logits = net.forward_train(images, ego, prompt, rollout.actions)
        finally:
            net.train(was_training)
        allowed = self.kind_masks[ctx.kinds]
        allowed[ctx.kinds == PAD] = True
        z = logits.float().masked_fill(~allowed, float("-inf")) / self.temperature
        logp = z.log_softmax(-1).gather(-1, rollout.actions[..., None]).squeeze(-1)
        return torch.where(rollout.mask, logp, torch.zeros_like(logp))

    def trainable_parameters(self, net: torch.nn.Module, which: str) -> list:
        if which not in TRAINABLE:
            raise ValueError(f"rl trainable: expected one of {sorted(TRAINABLE)} for autovla, got {which!r}")
        return trainable_by_prefix(net, TRAINABLE[which])


__all__ = ["TRAINABLE", "AutoVLAContext", "AutoVLAPolicy", "LengthPenalty"]
