"""DiffusionDrive network: the shared scene encoder, a trajectory decoder that predicts each noisy
anchor's clean trajectory and an anchor-classification logit, and the DiffusionDriveV2 selector's
coarse and fine score heads. Trajectories enter and leave in normalised coordinates (x/50, y/20);
the noise schedule is not here (:mod:`.scheduler`).

Query i of a group of K is anchor i's: it embeds the noisy trajectory, a learned per-anchor query,
the diffusion time and the scene encoder's ego token, and its clean-trajectory prediction is the
clean anchor plus a predicted offset. The noise carries no information about the logged future, so
the best prediction ignores it; predicting from the noisy input instead (x_t + offset, as
DiffusionDrive's code does) makes the decoder first learn to undo the noise, which a few hundred CPU
steps never reach, and the plan keeps the noise as jitter. The offset head starts at zero: an
untrained decoder returns the anchors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wamdiff_ros.models.checkpoint import load_checkpoint, load_state, save_checkpoint
from wamdiff_ros.models.encoder import SceneEncoder
from wamdiff_ros.models.transformer import CrossAttention
from wamdiff_ros.planners.diffusiondrive.anchors import SCALE
from wamdiff_ros.planners.diffusiondrive.config import ModelConfig


def _mlp(din: int, dout: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, hidden), nn.GELU(), nn.Linear(hidden, dout))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) diffusion timesteps (float) -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class DecoderLayer(nn.Module):
    """Self-attention among the queries of one group, cross-attention to the scene tokens, MLP (pre-norm)."""

    def __init__(self, d: int, heads: int, hidden: int, self_attention: bool = True):
        super().__init__()
        self.self_attn = CrossAttention(d, heads) if self_attention else None
        self.ln0 = nn.LayerNorm(d) if self_attention else None
        self.cross = CrossAttention(d, heads)
        self.ln1 = nn.LayerNorm(d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = _mlp(d, d, hidden)

    def forward(self, q: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        if self.self_attn is not None:
            h = self.ln0(q)
            q = q + self.self_attn(h, h)
        q = q + self.cross(self.ln1(q), scene)
        return q + self.mlp(self.ln2(q))


class DiffusionDriveNet(nn.Module):
    """See the module docstring. Shapes: B scenes, S scene tokens, N candidates (a multiple of the K
    anchors for :meth:`denoise`: each group of K attends within itself), T poses."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.decoder.d_model
        hidden = round(cfg.decoder.mlp_ratio * d)
        flat = 2 * cfg.spec.num_poses
        self.encoder = SceneEncoder(cfg.rig_obj, cfg.encoder, d)
        self.register_buffer("anchors", torch.zeros(cfg.num_anchors, cfg.spec.num_poses, 2), persistent=False)
        self.set_anchors(cfg.anchor_array)
        self.anchor_query = nn.Parameter(torch.randn(cfg.num_anchors, d) * 0.02)
        self.traj_in = _mlp(flat, d, hidden)
        self.time_mlp = _mlp(d, d, hidden)
        self.ego_in = nn.Linear(d, d)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.decoder.heads, hidden) for _ in range(cfg.decoder.layers))
        self.ln_out = nn.LayerNorm(d)
        self.x0_head = _mlp(d, flat, hidden)
        nn.init.zeros_(self.x0_head[-1].weight)
        nn.init.zeros_(self.x0_head[-1].bias)
        self.cls_head = _mlp(d, 1, hidden)
        self.score_in = _mlp(flat, d, hidden)
        self.coarse_head = _mlp(2 * d, 1, hidden)
        self.fine_layer = DecoderLayer(d, cfg.decoder.heads, hidden, self_attention=False)
        self.fine_head = _mlp(d, 1, hidden)

    @property
    def num_anchors(self) -> int:
        return self.cfg.num_anchors

    def set_anchors(self, anchors: np.ndarray) -> None:
        """Use (K, T, 2) anchors [m] (stored in the config, so checkpoints carry them); ``anchors``
        holds them normalised."""
        a = np.asarray(anchors, np.float64)
        if a.shape != tuple(self.anchors.shape) or not np.isfinite(a).all():
            raise ValueError(f"anchors: expected finite {tuple(self.anchors.shape)} waypoints [m], got {a.shape}")
        self.cfg.anchors = a.tolist()
        self.anchors.copy_(torch.from_numpy(a / SCALE))

    def encode(self, images: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        """images uint8 (B, C, H, W, 3), ego features (B, F) -> scene tokens (B, S, d)."""
        return self.encoder(images, ego)

    def denoise(self, scene: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """scene (B, S, d) (the ego token last), noisy trajectories x_t (B, N, T, 2) (N: groups of the K
        anchors in order), timesteps t (B,) -> predicted clean trajectories (B, N, T, 2) and anchor
        logits (B, N)."""
        b, n, tp, _ = x_t.shape
        k = self.num_anchors
        groups = n // k
        cond = self.time_mlp(timestep_embedding(t, self.cfg.decoder.d_model)) + self.ego_in(scene[:, -1])
        q = self.traj_in(x_t.reshape(b, n, 2 * tp)) + self.anchor_query.repeat(groups, 1) + cond[:, None]
        q = q.reshape(b * groups, k, -1)
        mem = scene.repeat_interleave(groups, dim=0) if groups > 1 else scene
        for layer in self.layers:
            q = layer(q, mem)
        q = self.ln_out(q).reshape(b, n, -1)
        x0 = self.anchors.repeat(groups, 1, 1) + self.x0_head(q).reshape(b, n, tp, 2)
        return x0, self.cls_head(q)[..., 0]

    def coarse_scores(self, scene: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """scene (B, S, d), candidates (B, M, T, 2) -> coarse quality logits (B, M)."""
        b, m, tp, _ = cand.shape
        e = self.score_in(cand.reshape(b, m, 2 * tp))
        pooled = scene.mean(1, keepdim=True).expand(b, m, -1)
        return self.coarse_head(torch.cat([e, pooled], dim=-1))[..., 0]

    def fine_scores(self, scene: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """scene (B, S, d), candidates (B, M, T, 2) -> fine quality logits (B, M) (cross-attention to the scene)."""
        b, m, tp, _ = cand.shape
        q = self.fine_layer(self.score_in(cand.reshape(b, m, 2 * tp)), scene)
        return self.fine_head(q)[..., 0]

    # -- checkpoint ----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, meta: dict | None = None) -> Path:
        return save_checkpoint(folder, "diffusiondrive", self.cfg.to_dict(), self.state_dict(), meta or {})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DiffusionDriveNet:
        doc, tensors = load_checkpoint(folder)
        net = cls(ModelConfig.from_dict(doc["config"], f"checkpoint {folder}"))
        load_state(net, tensors, str(folder))
        return net.eval()


__all__ = ["DecoderLayer", "DiffusionDriveNet", "timestep_embedding"]
