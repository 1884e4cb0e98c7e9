"""TrajMoE network: scene tokens, vocabulary queries, sparse-MoE FFNs, Gaussian sub-score heads.

``forward(images, ego, entries=None)``:

1. :class:`~wamdiff_ros.models.encoder.SceneEncoder` tokens, refined by a small self-attention
   :class:`~wamdiff_ros.models.transformer.Transformer` (no MoE).
2. Each vocabulary entry (T × 3 poses, scaled) is embedded by an MLP into a query.
3. ``decoder_layers`` blocks: ``q += CrossAttn(LN(q), scene)``, ``q += SparseMoEFFN(LN(q))`` (queries do
   not attend to each other, so cost is linear in the vocabulary size).
4. Heads per query: one logit per sub-metric in :data:`~.config.METRICS` (``σ(ℓ)`` is the predicted
   score), one log-σ per sub-metric (the Gaussian RL head ``N(σ(ℓ), σ²)``) and an imitation logit.

``entries`` (B, V') int64 picks a subset of the vocabulary per sample (vocabulary dropout in training);
None scores the first ``inference_size`` entries.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.checkpoint import load_checkpoint, load_state, save_checkpoint
from wamdiff_ros.models.config import MoEConfig
from wamdiff_ros.models.encoder import SceneEncoder
from wamdiff_ros.models.transformer import CrossAttention, Transformer
from wamdiff_ros.planners.trajmoe.config import METRICS, ModelConfig
from wamdiff_ros.planners.trajmoe.moe_ffn import SparseMoEFFN
from wamdiff_ros.planners.trajmoe.vocabulary import VOCABULARY_DECIMALS, default_vocabulary

POSE_SCALES = (20.0, 5.0, 0.5)
"""Divisors of vocabulary poses (x, y [m], yaw [rad]) before the query embedding."""


class QueryBlock(nn.Module):
    def __init__(self, d_model: int, heads: int, hidden: int, moe: MoEConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CrossAttention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = SparseMoEFFN(d_model, hidden, moe.num_experts, moe.top_k)

    def forward(self, q: torch.Tensor, ctx: torch.Tensor, collect_stats: bool = False) -> tuple[torch.Tensor, dict]:
        q = q + self.attn(self.ln1(q), ctx)
        y, aux = self.ffn(self.ln2(q), collect_stats)
        return q + y, aux


class TrajMoENet(nn.Module):
    """See the module docstring. Outputs ``(logits (B, V', M), log_sigma (B, V', M), imitation (B, V'))``
    and per-layer MoE aux dicts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.transformer.d_model
        hidden = round(cfg.transformer.mlp_ratio * d)
        self.encoder = SceneEncoder(cfg.rig_obj, cfg.encoder, d)
        self.scene = Transformer(cfg.transformer, MoEConfig(routing="none"))
        vocab = (
            np.asarray(cfg.vocabulary, np.float32) if cfg.vocabulary else default_vocabulary(cfg.vocab_size, cfg.spec)
        )
        if vocab.shape != (cfg.vocab_size, cfg.spec.num_poses, 3):
            raise ValueError(
                f"trajmoe vocabulary: expected ({cfg.vocab_size}, {cfg.spec.num_poses}, 3), got {vocab.shape}"
            )
        self.register_buffer("vocabulary", torch.as_tensor(vocab, dtype=torch.float32), persistent=False)
        self.register_buffer("pose_scales", torch.tensor(POSE_SCALES, dtype=torch.float32), persistent=False)
        t = cfg.spec.num_poses
        self.query = nn.Sequential(nn.Linear(3 * t, d), nn.GELU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(
            QueryBlock(d, cfg.transformer.heads, hidden, cfg.moe) for _ in range(cfg.decoder_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        m = len(METRICS)
        self.score_head = nn.Linear(d, m)
        self.sigma_head = nn.Linear(d, m)
        self.imitation_head = nn.Linear(d, 1)
        nn.init.zeros_(self.sigma_head.weight)
        nn.init.constant_(self.sigma_head.bias, math.log(cfg.scoring.sigma_init))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_vocabulary(self, vocab: np.ndarray) -> None:
        """Install a fitted vocabulary (V, T, 3) in the network and its config, rounded as the config
        stores it (:data:`~.vocabulary.VOCABULARY_DECIMALS`), so the network trains on what it loads."""
        vocab = np.round(np.asarray(vocab, np.float64), VOCABULARY_DECIMALS)
        if vocab.shape != tuple(self.vocabulary.shape):
            raise ValueError(f"trajmoe vocabulary: expected {tuple(self.vocabulary.shape)}, got {vocab.shape}")
        self.vocabulary.copy_(torch.from_numpy(vocab.astype(np.float32)))
        self.cfg.vocabulary = vocab.tolist()

    def encode(self, images: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        """(B, S, d) scene tokens."""
        return self.scene(self.encoder(images, ego))[0]

    def score(
        self, scene: torch.Tensor, entries: torch.Tensor | None = None, collect_stats: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
        b = scene.shape[0]
        if entries is None:
            poses = self.vocabulary[: self.cfg.inference_size].unsqueeze(0).expand(b, -1, -1, -1)
        else:
            poses = self.vocabulary[entries]
        q = self.query((poses / self.pose_scales).flatten(2))
        auxes = []
        for blk in self.blocks:
            q, aux = blk(q, scene, collect_stats)
            auxes.append(aux)
        q = self.ln_f(q)
        return self.score_head(q), self.sigma_head(q), self.imitation_head(q).squeeze(-1), auxes

    def forward(
        self, images: torch.Tensor, ego: torch.Tensor, entries: torch.Tensor | None = None, collect_stats: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
        return self.score(self.encode(images, ego), entries, collect_stats)

    # -- checkpoint ----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, meta: dict | None = None):
        return save_checkpoint(folder, "trajmoe", self.cfg.to_dict(), self.state_dict(), meta or {})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrajMoENet:
        doc, tensors = load_checkpoint(path)
        net = cls(ModelConfig.from_dict(doc["config"], f"checkpoint {path}: config.json"))
        load_state(net, tensors, str(path))
        return net


def plan_scores(logits: torch.Tensor, imitation: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(…, V, M) sub-score logits and (…, V) imitation logits -> (…, V) ranking score
    ``Σ_m w_m log σ(ℓ_m) + w_im log softmax(ℓ_im)`` (the plan is its argmax)."""
    w = torch.tensor([cfg.scoring.weight(m) for m in METRICS], dtype=logits.dtype, device=logits.device)
    return (F.logsigmoid(logits) * w).sum(-1) + cfg.scoring.imitation * F.log_softmax(imitation, dim=-1)


__all__ = ["POSE_SCALES", "TrajMoENet", "plan_scores"]
