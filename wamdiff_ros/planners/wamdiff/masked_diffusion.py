"""Masked discrete diffusion (LLaDA): the forward masking process, the training loss, one training
step, and the iterative unmasking decoder with its remasking orders.

Training (LLaDA): draw ``t ~ U(0, 1)`` per sample, mask each answer token independently with
``p_mask = (1 − ε)·t + ε`` (ε = 1e-3), and minimise the cross-entropy on masked tokens divided by
``p_mask``; per sample the sum is normalised by its number of answer tokens (LLaDA's SFT form), then
averaged over the batch.

Decoding: start from an all-``[MASK]`` block; at each of K steps predict every masked token, then
reveal a subset chosen by the remasking order; revealed tokens stay fixed. Step k reveals
``ceil(remaining / (K − k))`` tokens (LLaDA's even schedule), or with a threshold τ additionally every
masked token whose confidence is ≥ τ (Fast-dLLM-style parallel unmasking, which can finish early).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wamdiff_ros.planners.wamdiff.config import ORDERS

MASK_EPS = 1e-3


def p_mask_of(t: torch.Tensor, eps: float = MASK_EPS) -> torch.Tensor:
    """LLaDA's masking probability ``(1 − eps)·t + eps``."""
    return (1.0 - eps) * t + eps


def mask_tokens(
    tokens: torch.Tensor,
    answer: torch.Tensor,
    mask_id: int,
    t: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward process: (B, L) ``tokens``, (B, L) bool ``answer`` -> noisy ids, bool ``masked``, (B,) p_mask.

    Only answer tokens are ever masked: those whose uniform draw ``u`` (B, L) is below p_mask. ``t`` (B,)
    in [0, 1] and ``u`` default to uniform draws from ``generator``.
    """
    b, n = tokens.shape
    if t is None:
        t = torch.rand(b, generator=generator, device=tokens.device)
    if u is None:
        u = torch.rand(b, n, generator=generator, device=tokens.device)
    p = p_mask_of(t)
    masked = (u < p[:, None]) & answer
    return torch.where(masked, torch.full_like(tokens, mask_id), tokens), masked, p


def llada_loss(
    logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, p_mask: torch.Tensor, answer: torch.Tensor
) -> torch.Tensor:
    """``mean_b [ Σ_i masked_bi · CE(logits_bi, targets_bi) / p_mask_b ] / #answer_b``.

    Shapes: logits (B, L, V); targets, masked, answer (B, L); p_mask (B,).
    """
    b, n, v = logits.shape
    ce = F.cross_entropy(logits.reshape(-1, v).float(), targets.reshape(-1), reduction="none").view(b, n)
    per_sample = (ce * masked.float()).sum(1) / p_mask / answer.float().sum(1).clamp_min(1.0)
    return per_sample.mean()


@dataclass
class TrainBatch:
    """A multi-task training batch (tasks mix freely: presence flags and answer masks differ per row).

    Attributes:
        images: (B, C, H, W, 3) uint8.
        ego: (B, F) float32 ego features.
        tokens: (B, P+R+T) int64 target ids (see :func:`wamdiff_ros.planners.wamdiff.layout.make_sample`).
        answer: (B, P+R+T) bool answer positions.
        present: (B, 2) bool (text, trajectory) blocks present.
        complex: (B,) float complexity labels.
    """

    images: torch.Tensor
    ego: torch.Tensor
    tokens: torch.Tensor
    answer: torch.Tensor
    present: torch.Tensor
    complex: torch.Tensor


def compute_losses(
    net,
    batch: TrainBatch,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    u: torch.Tensor | None = None,
):
    """Loss terms of one batch: ``llada``, ``balance`` (MoE, token choice), ``complexity`` (BCE), ``total``
    (``t``, ``u``: the masking draws of :func:`mask_tokens`)."""
    p = net.layout.prompt_len
    noisy, masked, p_mask = mask_tokens(batch.tokens, batch.answer, net.space.text.mask_id, t, generator, u)
    logits, complexity, aux = net.forward_train(batch.images, batch.ego, noisy, batch.present)
    llada = llada_loss(logits, batch.tokens[:, p:], masked[:, p:], p_mask, batch.answer[:, p:])
    balance = sum((a["balance_loss"] for a in aux if "balance_loss" in a), torch.zeros((), device=logits.device))
    comp = F.binary_cross_entropy_with_logits(complexity, batch.complex.float())
    total = llada + net.cfg.moe.balance_weight * balance + 0.1 * comp
    return {"llada": llada, "balance": balance, "complexity": comp, "total": total}


def training_step(
    net, batch: TrainBatch, optimizer: torch.optim.Optimizer, generator: torch.Generator | None = None
) -> dict[str, float]:
    """One optimisation step on ``batch``; returns the loss terms as floats."""
    net.train()
    losses = compute_losses(net, batch, generator)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}


@dataclass
class DecodeResult:
    """Outcome of decoding one block.

    Attributes:
        ids: (B, A) decoded token ids (no ``[MASK]`` left).
        confidences: (B, A) probability of each token when it was revealed (1 for tokens given).
        step_of: (B, A) step index at which each token was revealed (-1 for tokens given).
        steps: number of model calls made.
    """

    ids: torch.Tensor
    confidences: torch.Tensor
    step_of: torch.Tensor
    steps: int


def order_scores(order: str, conf: torch.Tensor, rank: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Priority of each position (higher = revealed earlier) for a remasking order.

    ``rank`` (A,) is each position's distance rank from the ego (0 = nearest waypoint / first word):
    ``causal`` reveals low ranks first, ``reverse_causal`` (goal first) high ranks first.
    """
    if order == "low_confidence":
        return conf
    if order == "random":
        return torch.rand(conf.shape, generator=generator, device=conf.device)
    if order == "causal":
        return (-rank.float()).expand_as(conf)
    if order == "reverse_causal":
        return rank.float().expand_as(conf)
    raise ValueError(f"decoding order: expected one of {ORDERS}, got {order!r}")


def decode_block(
    step_fn: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    mask_id: int,
    steps: int,
    order: str = "low_confidence",
    allowed: torch.Tensor | None = None,
    rank: torch.Tensor | None = None,
    threshold: float | None = None,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> DecodeResult:
    """Iteratively unmask the ``[MASK]`` positions of ``ids`` (B, A) in at most ``steps`` model calls.

    Args:
        step_fn: ids (B, A) -> logits (B, A, V).
        allowed: (A, V) bool, tokens each position may take (constrained decoding), None = all.
        rank: (A,) distance rank for the causal orders (default: position index, which for the
            interleaved trajectory ``x0 y0 x1 y1 …`` is waypoint order, x before y).
        threshold: reveal every masked token with confidence ≥ τ besides the scheduled ones.
        temperature: 0 greedy; > 0 Gumbel-max sampling from ``softmax(logits / temperature)``.
    """
    if order not in ORDERS:
        raise ValueError(f"decoding order: expected one of {ORDERS}, got {order!r}")
    if steps < 1:
        raise ValueError(f"decoding steps: expected >= 1, got {steps}")
    ids = ids.clone()
    b, a = ids.shape
    rank = torch.arange(a, device=ids.device) if rank is None else rank.to(ids.device)
    confidences = torch.ones(b, a, device=ids.device)
    step_of = torch.full((b, a), -1, dtype=torch.long, device=ids.device)
    block = None if allowed is None else ~allowed.to(ids.device)
    calls = 0
    for k in range(steps):
        masked = ids == mask_id
        remaining = masked.sum(1)
        if not bool(remaining.any()):
            break
        logits = step_fn(ids).float()
        calls += 1
        if block is not None:
            logits = logits.masked_fill(block, float("-inf"))
        probs = logits.softmax(-1)
        if temperature > 0:
            u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1 - 1e-10)
            x0 = (logits / temperature - torch.log(-torch.log(u))).argmax(-1)
        else:
            x0 = logits.argmax(-1)
        conf = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        score = order_scores(order, conf, rank, generator).masked_fill(~masked, float("-inf"))
        n_reveal = (remaining + (steps - k) - 1) // (steps - k)
        pos_rank = torch.empty_like(step_of).scatter_(
            1, score.argsort(dim=1, descending=True, stable=True), torch.arange(a, device=ids.device).expand(b, a)
        )
        reveal = (pos_rank < n_reveal[:, None]) & masked
        if threshold is not None:
            reveal |= masked & (conf >= threshold)
        ids = torch.where(reveal, x0, ids)
        confidences = torch.where(reveal, conf, confidences)
        step_of = torch.where(reveal, torch.full_like(step_of, k), step_of)
    return DecodeResult(ids, confidences, step_of, calls)
