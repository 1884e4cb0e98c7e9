"""TrajMoE's sparse mixture-of-experts FFN: ``MoE(x) = Σ_{i∈S} w_i e_i(x) + e_0(x)``.

``N`` private experts and one always-on shared expert ``e_0``, each a two-layer GELU FFN; the router
picks the top-k experts per token with renormalised softmax weights
(:func:`~wamdiff_ros.models.moe.token_choice_gates`). Every expert is evaluated densely and weighted by
its gate (zero outside the top k) as two matmuls over the concatenated experts
(``Σ_e g_e e_e(h) = (g ⊗ GELU(h W1_cat + b1)) W2_cat + g B2``), so the exported graph has static shapes
and no gather; the balance loss is
:func:`~wamdiff_ros.models.moe.balance_loss` (CV²(importance) + CV²(load)) of the layer's gates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.moe import balance_loss, token_choice_gates


class SparseMoEFFN(nn.Module):
    """``forward(h (B, N, d)) -> (out (B, N, d), aux)``; ``aux`` holds ``balance_loss`` in training and,
    with ``collect_stats``, the router ``probs`` and ``gates`` (B, N, E) for
    :func:`~wamdiff_ros.models.moe.routing_stats`."""

    def __init__(self, d_model: int, hidden: int, num_experts: int, top_k: int):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"SparseMoEFFN: top_k must be in 1..{num_experts}, got {top_k}")
        self.top_k = top_k
        self.router = nn.Linear(d_model, num_experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.w1 = nn.Parameter(torch.randn(num_experts, d_model, hidden) / math.sqrt(d_model))
        self.b1 = nn.Parameter(torch.zeros(num_experts, hidden))
        self.w2 = nn.Parameter(torch.randn(num_experts, hidden, d_model) / math.sqrt(hidden) * 0.1)
        self.b2 = nn.Parameter(torch.zeros(num_experts, d_model))
        self.shared = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, h: torch.Tensor, collect_stats: bool = False) -> tuple[torch.Tensor, dict]:
        probs = F.softmax(self.router(h).float(), dim=-1)
        gates = token_choice_gates(probs, self.top_k).to(h.dtype)
        e, d, hidden = self.w1.shape
        z = F.gelu(h @ self.w1.permute(1, 0, 2).reshape(d, e * hidden) + self.b1.reshape(-1))
        z = (z.view(*z.shape[:-1], e, hidden) * gates.unsqueeze(-1)).flatten(-2)
        out = z @ self.w2.reshape(e * hidden, d) + gates @ self.b2 + self.shared(h)
        aux: dict = {}
        if self.training:
            aux["balance_loss"] = balance_loss(gates.reshape(-1, gates.shape[-1]))
        if collect_stats:
            aux["probs"] = probs.detach()
            aux["gates"] = gates.detach()
        return out, aux


__all__ = ["SparseMoEFFN"]
