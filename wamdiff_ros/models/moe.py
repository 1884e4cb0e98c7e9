"""LoRA mixture of experts, added in parallel to a block's dense MLP (``x + MLP(h) + MoE(h)``).

Expert ``i`` is a LoRA map ``e_i(h) = (alpha / rank) · B_i A_i h`` (A: rank×d, B: d×rank, B starts at
zero so a fresh MoE adds nothing). Because experts are linear, the mixture
``Σ_i g_i(h) e_i(h) = (alpha/rank) · B_cat (g ⊗ A_cat h)`` is two matmuls with the gates applied in
between, so every expert is evaluated densely at a cost of ``2·d·E·rank`` per token and the graph has
static shapes (no gather/scatter of variable token counts).

Routing (router ``p = softmax(h W_r)`` over experts, per token):

- ``expert_choice`` (WAM-Diff): within each token group (one forward block: the prefix, the text
  answer or the trajectory), each expert takes its ``C = ceil(capacity_factor · N / E)`` highest-scoring
  tokens; gate = p at the chosen (token, expert) pairs, 0 elsewhere. Loads are balanced by
  construction; some tokens may get no expert.
- ``token_choice`` (TrajMoE): each token takes its top-k experts with renormalised weights
  ``w = p_topk / Σ p_topk``, plus an always-on shared expert ``e_0``; the balance loss is
  ``CV²(importance) + CV²(load)`` with ``I_e = Σ_tokens g_e`` and ``L_e = #{tokens: g_e > 0}``.
  ``CV²(v) = Var(v) / mean(v)²`` with the population variance. (The load term is a count, so its
  gradient is zero, as written in the paper; importance carries the gradient.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.config import MoEConfig


def cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation ``Var(x) / (mean(x)² + eps)`` (population variance) of a 1-D tensor."""
    x = x.float()
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var(unbiased=False) / (x.mean() ** 2 + eps)


_TIE_BREAKS: dict = {}


def _tie_break(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, 1) ``1e-6 · token index``, cached per shape (it is a constant of the graph)."""
    key = (n, dtype, device)
    if key not in _TIE_BREAKS:
        _TIE_BREAKS[key] = torch.arange(n, dtype=dtype, device=device).unsqueeze(-1) * 1e-6
    return _TIE_BREAKS[key]


def expert_choice_gates(
    probs: torch.Tensor, capacity_factor: float, log_probs: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, N, E) router probabilities -> (B, N, E) gates: each expert keeps its top-C tokens.

    Tokens are ranked by ``log_probs`` when given (same order as ``probs``, but without the float32
    saturation at p = 1), and exact ties go to the earlier token, so every backend picks the same set."""
    _, n, e = probs.shape
    cap = min(n, max(1, math.ceil(capacity_factor * n / e)))
    with torch.no_grad():
        rank_by = (probs if log_probs is None else log_probs) - _tie_break(n, probs.dtype, probs.device)
        idx = rank_by.transpose(1, 2).topk(cap, dim=-1).indices
        chosen = torch.zeros_like(probs.transpose(1, 2)).scatter(-1, idx, 1.0).transpose(1, 2)
    return probs * chosen


def token_choice_gates(probs: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, E) router probabilities -> (B, N, E) gates: top-k experts per token, weights renormalised."""
    val, idx = probs.topk(k, dim=-1)
    return torch.zeros_like(probs).scatter(-1, idx, val / val.sum(-1, keepdim=True))


class LoRAMoE(nn.Module):
    """``forward(h (B, N, d), groups) -> (out (B, N, d), aux)``; see the module docstring."""

    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        e, r = cfg.num_experts, cfg.rank
        self.scale = cfg.alpha / r
        self.router = nn.Linear(d_model, e, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.lora_a = nn.Parameter(torch.randn(e * r, d_model) / math.sqrt(d_model))
        self.lora_b = nn.Parameter(torch.zeros(d_model, e * r))
        self.shared = cfg.routing == "token_choice" and cfg.shared_expert
        if self.shared:
            self.shared_a = nn.Parameter(torch.randn(r, d_model) / math.sqrt(d_model))
            self.shared_b = nn.Parameter(torch.zeros(d_model, r))

    def gates(self, h: torch.Tensor, groups: list[tuple[int, int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Router probabilities and gates, both (B, N, E). Expert choice routes each ``(start, end)``
        token group on its own (None: one group)."""
        if self.cfg.routing == "token_choice":
            probs = F.softmax(self.router(h).float(), dim=-1)
            return probs, token_choice_gates(probs, self.cfg.top_k)
        logp = F.log_softmax(self.router(h).float(), dim=-1)
        probs = logp.exp()
        cf = self.cfg.capacity_factor
        if not groups or len(groups) == 1:
            return probs, expert_choice_gates(probs, cf, logp)
        parts = [expert_choice_gates(probs[:, a:b], cf, logp[:, a:b]) for a, b in groups]
        return probs, torch.cat(parts, dim=1)

    def forward(
        self, h: torch.Tensor, groups: list[tuple[int, int]] | None = None, collect_stats: bool = False
    ) -> tuple[torch.Tensor, dict]:
        """Mixture output and ``aux``: ``balance_loss`` (token choice, training) and, with
        ``collect_stats``, the detached router ``probs`` and ``gates`` (B, N, E) for :func:`routing_stats`."""
        b, n, _ = h.shape
        probs, gates = self.gates(h, groups)
        z = (h @ self.lora_a.t()).view(b, n, self.cfg.num_experts, self.cfg.rank)
        z = (z * gates.to(z.dtype).unsqueeze(-1)).view(b, n, -1)
        out = (z @ self.lora_b.t()) * self.scale
        if self.shared:
            out = out + (h @ self.shared_a.t() @ self.shared_b.t()) * self.scale
        aux: dict = {}
        if self.cfg.routing == "token_choice" and self.training:
            aux["balance_loss"] = balance_loss(gates.reshape(-1, gates.shape[-1]))
        if collect_stats:
            aux["probs"] = probs.detach()
            aux["gates"] = gates.detach()
        return out, aux


def balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """TrajMoE's ``CV²(importance) + CV²(load)`` of (tokens, E) gates for one layer."""
    return cv_squared(gates.sum(0)) + cv_squared((gates > 0).float().sum(0))


def routing_stats(calls: list[list[dict]], routing: str) -> dict:
    """Routing statistics over several forward calls (each a per-layer list of aux dicts with
    ``probs``/``gates``), JSON-ready:

    - ``load``: per layer, each expert's share of the (token, expert) assignments (sums to 1);
    - ``importance``: per layer, each expert's share of the gate mass;
    - ``entropy``: per layer, mean router entropy per token [nats] (``max_entropy`` = ln E);
    - ``unrouted``: per layer, fraction of tokens that no expert took (expert choice drops some);
    - ``tokens``: tokens routed per layer.
    """
    layers = [[aux[i] for aux in calls if aux and "probs" in aux[i]] for i in range(len(calls[0]) if calls else 0)]
    if not layers or not layers[0]:
        return {}
    probs = torch.stack([torch.cat([a["probs"].reshape(-1, a["probs"].shape[-1]) for a in lay]) for lay in layers])
    gates = torch.stack([torch.cat([a["gates"].reshape(-1, a["gates"].shape[-1]) for a in lay]) for lay in layers])
    assigned = (gates > 0).float()
    counts = assigned.sum(1)
    mass = gates.sum(1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean(1)
    unrouted = (assigned.sum(-1) == 0).float().mean(1)
    e = probs.shape[-1]
    return {
        "routing": routing,
        "num_experts": e,
        "tokens": int(probs.shape[1]),
        "load": (counts / counts.sum(-1, keepdim=True).clamp_min(1e-12)).tolist(),
        "importance": (mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)).tolist(),
        "entropy": entropy.tolist(),
        "mean_entropy": float(entropy.mean()),
        "max_entropy": math.log(e),
        "unrouted": unrouted.tolist(),
    }
