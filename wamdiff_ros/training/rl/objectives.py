"""Policy-gradient objectives on groups of sampled answers: group-normalised advantages, GSPO's
sequence-level clipped ratio, GRPO's token-level clipped ratio, and the k3 KL estimate.

Shapes: ``logp``, ``old_logp``, ``ref_logp`` and ``mask`` are (N, L): N sampled answers, L answer
tokens each, ``mask`` True where a token was generated (counts towards |y|); ``advantages`` is (N,).
All functions return a scalar loss to minimise and a dict of detached statistics (``clip_fraction``:
share of sequences, or tokens for GRPO, whose gradient the clip removes).
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4, std_floor: float = 0.0) -> torch.Tensor:
    """(groups, G) rewards -> (groups, G) advantages ``(r − mean) / (max(std, std_floor) + eps)`` within
    each group (population standard deviation); a group whose rewards are all equal gets zero advantages.

    ``std_floor`` > 0 keeps near-tied groups (e.g. eight highway plans scoring 0.98–1.00) from having
    their tiny reward differences blown up to unit-size advantages, which otherwise push the policy
    around without improving it; 0 is plain GRPO normalisation."""
    r = rewards.double()
    mean = r.mean(-1, keepdim=True)
    std = r.std(-1, unbiased=False, keepdim=True).clamp_min(std_floor)
    return ((r - mean) / (std + eps)).to(rewards.dtype)


def rollout_advantages(
    rewards: torch.Tensor, groups: torch.Tensor | None = None, eps: float = 1e-4, std_floor: float = 0.0
) -> torch.Tensor:
    """(G,) rewards of one rollout -> (G,) advantages, normalised as :func:`group_advantages` over the
    whole group, or within each sub-group when ``groups`` (G,) int says which answer belongs where."""
    if groups is None:
        return group_advantages(rewards[None], eps, std_floor)[0]
    out = torch.empty_like(rewards)
    for g in torch.unique(groups):
        sel = groups == g
        out[sel] = group_advantages(rewards[sel][None], eps, std_floor)[0]
    return out


def gate_advantages(
    advantages: torch.Tensor,
    rewards: torch.Tensor,
    *,
    floor: float | None = None,
    reference_reward: float | None = None,
    failed: torch.Tensor | None = None,
    fail_value: float | None = None,
) -> torch.Tensor:
    """(G,) advantages reshaped by per-sample rules, in this order: clamped at >= ``floor``; zeroed where
    the reward is below ``reference_reward`` (e.g. the logged trajectory's: only answers at least as good
    as the data are reinforced); set to ``fail_value`` where ``failed`` (G,) bool (e.g. an at-fault
    collision or leaving the drivable area). None switches a rule off."""
    out = advantages.clone()
    if floor is not None:
        out = out.clamp_min(floor)
    if reference_reward is not None:
        out = torch.where(rewards.to(out.dtype) >= reference_reward, out, torch.zeros_like(out))
    if failed is not None and fail_value is not None:
        out = torch.where(failed, torch.full_like(out, fail_value), out)
    return out


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token unbiased, non-negative estimate of KL(π_θ ‖ π_ref) from samples of π_θ (Schulman's k3):
    ``exp(ref − logp) − (ref − logp) − 1``."""
    d = ref_logp - logp
    return d.exp() - d - 1.0


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(N, L) -> (N,) mean over the masked tokens of each row (weighted by ``weights`` (N, L) when given)."""
    m = mask.to(x.dtype)
    if weights is not None:
        m = m * weights.to(x.dtype)
        return (x * m).sum(-1) / m.sum(-1).clamp_min(1e-12)
    return (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def _clip_active(ratio: torch.Tensor, adv: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Where the clipped term wins the ``min`` (its gradient is zero): ratio above ``high`` with a
    positive advantage, or below ``low`` with a negative one."""
    return ((ratio > high) & (adv > 0)) | ((ratio < low) & (adv < 0))


def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    kl: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """GSPO (arXiv 2507.18071): ``s_i = (π_θ(y_i)/π_old(y_i))^(1/|y_i|) = exp(mean_t(logp − old_logp))``,
    loss ``−mean_i min(s_i·A_i, clip(s_i, 1 − clip_low, 1 + clip_high)·A_i) + beta·mean_i mean_t k3``
    (``kl``: the policy's exact per-action KL (G, A) in place of the k3 estimate; ``weights`` (N, L): a
    weighted mean over t, e.g. a discount over denoising steps)."""
    log_s = _masked_mean(logp - old_logp, mask, weights)
    s = log_s.exp()
    a = advantages.to(s.dtype)
    surrogate = torch.minimum(s * a, s.clamp(1.0 - clip_low, 1.0 + clip_high) * a)
    loss = -surrogate.mean()
    per_action = kl if kl is not None else kl_k3(logp, ref_logp) if ref_logp is not None else None
    kl = _masked_mean(per_action, mask).mean() if per_action is not None else logp.new_zeros(())
    if beta:
        loss = loss + beta * kl
    clipped = _clip_active(s, a, 1.0 - clip_low, 1.0 + clip_high)
    stats = {
        "ratio_mean": float(s.detach().mean()),
        "clip_fraction": float(clipped.float().mean()),
        "kl": float(kl.detach()),
    }
    return loss, stats


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    kl: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """GRPO (DeepSeekMath): token ratio ``r_it = exp(logp − old_logp)``, loss
    ``−mean_i mean_t [min(r_it·A_i, clip(r_it, 1 − clip, 1 + clip)·A_i) − beta·k3_it]`` (``kl``: the
    policy's exact per-action KL (G, A) in place of k3; ``weights`` (N, L): a weighted mean over t
    instead, e.g. a discount over denoising steps)."""
    r = (logp - old_logp).exp()
    a = advantages.to(r.dtype)[:, None]
    per_token = torch.minimum(r * a, r.clamp(1.0 - clip, 1.0 + clip) * a)
    k3 = kl if kl is not None else kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if beta:
        per_token = per_token - beta * k3
    loss = -_masked_mean(per_token, mask, weights).mean()
    m = mask.bool()
    clipped = _clip_active(r, a, 1.0 - clip, 1.0 + clip) & m
    stats = {
        "ratio_mean": float(r.detach()[m].mean()) if m.any() else 1.0,
        "clip_fraction": float(clipped.float().sum() / m.float().sum().clamp_min(1.0)),
        "kl": float(_masked_mean(k3.detach(), mask).mean()),
    }
    return loss, stats


OBJECTIVES = ("gspo", "grpo")


__all__ = ["OBJECTIVES", "gate_advantages", "group_advantages", "grpo_loss", "gspo_loss", "kl_k3", "rollout_advantages"]
