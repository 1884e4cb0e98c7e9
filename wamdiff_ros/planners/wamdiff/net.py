"""The WAM-Diff network: scene encoder + masked-diffusion transformer + complexity head.

Three entry points share one set of weights:

- :meth:`WamDiffNet.encode` — once per frame: scene tokens + prompt through the transformer, returning
  the prefix key/value cache and the complexity logit.
- :meth:`WamDiffNet.step` — once per decoding step: one answer block (text or trajectory ids, with
  ``[MASK]`` where undecided) attending to a cached prefix; returns logits and the block's keys/values.
- :meth:`WamDiffNet.forward_train` — the whole block-causal sequence at once, for training. It is
  exactly equivalent to ``encode`` followed by ``step`` calls (a unit test checks this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.encoder import SceneEncoder
from wamdiff_ros.models.text_tokenizer import TextTokenizer
from wamdiff_ros.models.transformer import Transformer
from wamdiff_ros.planners.wamdiff.config import ModelConfig
from wamdiff_ros.planners.wamdiff.layout import SequenceLayout, TokenSpace
from wamdiff_ros.planners.wamdiff.trajectory_tokenizer import TrajectoryTokenizer


def build_token_space(cfg: ModelConfig) -> TokenSpace:
    text = TextTokenizer.from_tokens(cfg.text_tokens) if cfg.text_tokens else TextTokenizer(cfg.vocab)
    return TokenSpace(text, TrajectoryTokenizer(cfg.trajectory, cfg.spec))


def build_layout(cfg: ModelConfig) -> SequenceLayout:
    return SequenceLayout(cfg.scene_len, cfg.layout.prompt_len, cfg.layout.text_len, 2 * cfg.spec.num_poses)


class WamDiffNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.space = build_token_space(cfg)
        self.layout = build_layout(cfg)
        d = cfg.transformer.d_model
        self.encoder = SceneEncoder(cfg.rig_obj, cfg.encoder, d)
        self.tok_emb = nn.Embedding(len(self.space), d)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        self.pos_emb = nn.Parameter(torch.randn(self.layout.tokens_len, d) * 0.02)
        self.transformer = Transformer(cfg.transformer, cfg.moe)
        self.complexity = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, 1))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output head tied to the token embedding."""
        return F.linear(h, self.tok_emb.weight)

    def encode(
        self, images: torch.Tensor, ego: torch.Tensor, prompt: torch.Tensor, collect_stats: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        """``images`` uint8 (B, C, H, W, 3), ``ego`` (B, F), ``prompt`` int64 (B, P) ->
        prefix key/values (layers, 2, B, heads, S+P, head_dim), complexity logit (B,), MoE aux."""
        p = self.layout.prompt_len
        x = torch.cat([self.encoder(images, ego), self.tok_emb(prompt) + self.pos_emb[:p]], dim=1)
        h, kv, aux = self.transformer(x, collect_stats=collect_stats)
        return kv, self.complexity(h.mean(dim=1)).squeeze(-1), aux

    def step(
        self, prefix_kv: torch.Tensor, ids: torch.Tensor, offset: int, collect_stats: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        """One answer block ``ids`` (B, A) at slot position ``offset`` (``layout.text_offset`` or
        ``layout.traj_offset``) -> logits (B, A, V), the block's key/values, MoE aux."""
        x = self.tok_emb(ids) + self.pos_emb[offset : offset + ids.shape[1]]
        h, kv, aux = self.transformer(x, prefix_kv=prefix_kv, collect_stats=collect_stats)
        return self._logits(h), kv, aux

    def attention_mask(self, present: torch.Tensor) -> torch.Tensor:
        """(B, 1, N, N) bool block-causal mask over ``[prefix | text | trajectory]`` for (B, 2) bool
        ``present`` flags of the (text, trajectory) blocks; absent blocks are hidden from other blocks."""
        lay = self.layout
        dev = present.device
        block = torch.cat(
            [
                torch.zeros(lay.prefix_len, dtype=torch.long, device=dev),
                torch.ones(lay.text_len, dtype=torch.long, device=dev),
                torch.full((lay.traj_len,), 2, dtype=torch.long, device=dev),
            ]
        )
        causal = block[None, :] <= block[:, None]
        flags = torch.cat([torch.ones_like(present[:, :1]), present], dim=1).bool()
        key_present = flags[:, block]
        same = block[None, :] == block[:, None]
        return (causal[None] & (key_present[:, None, :] | same[None])).unsqueeze(1)

    def forward_train(
        self,
        images: torch.Tensor,
        ego: torch.Tensor,
        tokens: torch.Tensor,
        present: torch.Tensor,
        collect_stats: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        """``tokens`` (B, P+R+T) noisy ids, ``present`` (B, 2) -> logits (B, R+T, V) of the answer
        slots, complexity logit (B,), MoE aux per layer (with ``balance_loss`` for token choice)."""
        lay = self.layout
        x = torch.cat([self.encoder(images, ego), self.tok_emb(tokens) + self.pos_emb], dim=1)
        s = lay.prefix_len
        groups = [(0, s), (s, s + lay.text_len), (s + lay.text_len, x.shape[1])]
        h, _, aux = self.transformer(x, mask=self.attention_mask(present), groups=groups, collect_stats=collect_stats)
        complexity = self.complexity(h[:, :s].mean(dim=1)).squeeze(-1)
        return self._logits(h[:, s:]), complexity, aux

    def save(self, path, meta: dict | None = None):
        """Write a checkpoint folder (``config.json`` + ``model.safetensors``); returns its path."""
        from wamdiff_ros.models.checkpoint import save_checkpoint

        info = {"parameters": self.num_parameters, "quantisation": self.space.traj.report(), **(meta or {})}
        config = {**self.cfg.to_dict(), "text_tokens": list(self.space.text.tokens)}
        return save_checkpoint(path, self.cfg.family, config, self.state_dict(), info)

    @classmethod
    def load(cls, path) -> WamDiffNet:
        """Rebuild the network from a checkpoint folder, in eval mode; CheckpointError on any defect."""
        from wamdiff_ros.config import ConfigError
        from wamdiff_ros.models.checkpoint import CheckpointError, load_checkpoint, load_state

        doc, tensors = load_checkpoint(path)
        if doc["family"] != "wamdiff":
            raise CheckpointError(f"checkpoint {path}: family {doc['family']!r} is not 'wamdiff'")
        try:
            net = cls(ModelConfig.from_dict(doc["config"], f"checkpoint {path} config"))
        except (ConfigError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path}: {e}") from e
        load_state(net, tensors, str(path))
        return net.eval()
