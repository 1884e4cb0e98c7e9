"""RL on the Gaussian score heads (TrajMoE's GRPO): each head predicts ``N(σ(ℓ), σ²)`` per entry.

For one scene the policy takes the K best-ranked vocabulary entries and draws G answers; answer g is a
(K, M) sample of every entry's sub-scores. Its reward is ``−Σ_m w_m mean_k |s_gkm − s*_km| / Σ_m w_m``
against the scorer's labels ``s*`` of those K entries for the scene (:attr:`Rollout.reward`), so
advantages are normalised over the G answers of the scene (the seed normalises per entry and head; the
shared trainer normalises per answer). Each entry is one action of D = M values, its log-probability
the sum over heads of the Gaussian log-density. The answer's poses are the entry its sampled scores
rank best (the trainer logs the scorer's metrics of those poses). The KL to the reference is the closed
form between Gaussians (:meth:`GaussianScorePolicy.kl`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wamdiff_ros.planners.trajmoe.config import METRICS
from wamdiff_ros.planners.trajmoe.labels import score_vocabulary
from wamdiff_ros.planners.trajmoe.net import plan_scores
from wamdiff_ros.training.rl.policy import Rollout, trainable_by_prefix
from wamdiff_ros.types import Observation

SCORE_EPS = 1e-4
"""Sampled scores are clipped to [eps, 1 − eps] before the log-score ranking of an answer's plan."""


class GaussianScorePolicy:
    """:class:`~wamdiff_ros.training.rl.policy.Policy` of a TrajMoE planner (see the module docstring)."""

    def __init__(self, planner, entries: int = 16, temperature: float = 1.0):
        if entries < 1 or temperature <= 0:
            raise ValueError(f"trajmoe rl: entries >= 1 and temperature > 0 required, got {entries}, {temperature}")
        self.planner = planner
        self.net = planner.network()
        self.cfg = self.net.cfg
        self.entries = min(int(entries), self.cfg.inference_size)
        self.temperature = float(temperature)
        w = torch.tensor([self.cfg.scoring.weight(m) for m in METRICS], dtype=torch.float64)
        self._weights = (w / w.sum()).numpy()

    def _gaussian(self, net: nn.Module, context) -> tuple[torch.Tensor, torch.Tensor]:
        images, ego, top = context
        logits, log_sigma, _, _ = net(images, ego, top[None])
        return torch.sigmoid(logits[0]), log_sigma[0].exp() * self.temperature

    def sample(self, obs: Observation, group_size: int, generator: torch.Generator) -> Rollout:
        images, ego = self.planner.inputs(obs)
        with torch.no_grad():
            logits, _, imitation, _ = self.net(images, ego)
            top = torch.topk(plan_scores(logits, imitation, self.cfg)[0], self.entries).indices
            context = (images, ego, top)
            mu, sigma = self._gaussian(self.net, context)
            noise = torch.randn((group_size, *mu.shape), generator=generator, dtype=mu.dtype)
            actions = mu + sigma * noise
            imitation_top = imitation[0, top]
        ranked = plan_scores(torch.logit(actions.clamp(SCORE_EPS, 1 - SCORE_EPS)), imitation_top, self.cfg)
        vocab = self.net.vocabulary[top].double().numpy()
        poses = vocab[ranked.argmax(-1).numpy()]
        mask = torch.ones(actions.shape[:2], dtype=torch.bool)
        sampled = actions.double().numpy()
        weights = self._weights

        def reward(scene) -> np.ndarray:
            target = score_vocabulary(vocab, scene).astype(np.float64)
            return -(np.abs(sampled - target[None]) * weights).sum(-1).mean(-1)

        return Rollout(actions, mask, poses, context=context, reward=reward)

    def logprobs(self, rollout: Rollout, net: nn.Module | None = None) -> torch.Tensor:
        mu, sigma = self._gaussian(net or self.net, rollout.context)
        return torch.distributions.Normal(mu, sigma).log_prob(rollout.actions).sum(-1)

    def kl(self, rollout: Rollout, ref_net: nn.Module) -> torch.Tensor:
        """(G, K) closed-form KL(N(μ, σ²) ‖ N(μ_ref, σ_ref²)) summed over heads, per entry (the same for
        every answer: the heads' distributions do not depend on the sample)."""
        mu, sigma = self._gaussian(self.net, rollout.context)
        with torch.no_grad():
            ref_mu, ref_sigma = self._gaussian(ref_net, rollout.context)
        kl = torch.log(ref_sigma / sigma) + (sigma**2 + (mu - ref_mu) ** 2) / (2 * ref_sigma**2) - 0.5
        return kl.sum(-1).expand(rollout.group_size, -1)

    def trainable_parameters(self, net: nn.Module, which: str) -> list:
        from wamdiff_ros.planners.trajmoe.planner import TRAINABLE

        if which not in TRAINABLE:
            raise ValueError(f"rl trainable: trajmoe trains one of {sorted(TRAINABLE)}, got {which!r}")
        return trainable_by_prefix(net, TRAINABLE[which])


__all__ = ["SCORE_EPS", "GaussianScorePolicy"]
