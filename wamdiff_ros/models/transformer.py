"""Pre-norm transformer blocks with a prefix key/value cache and a LoRA-MoE beside the dense MLP.

A block computes ``x + Attn(LN(x))`` then ``x + MLP(LN(x)) + MoE(LN(x))``. Attention is bidirectional
within the tokens passed in; ``prefix_kv`` adds cached keys/values of earlier blocks (which the new
tokens see but which never see the new tokens), which is how a block-causal sequence layout (a prefix,
then answer blocks) is evaluated one block at a time.

``out_rows`` asks for the outputs of the last tokens only (a prefill that reads one or two logits): the
last block still computes every token's keys/values but its queries, attention, MLP and final norm
only for those rows.

``step`` evaluates one token over a static-length cache (autoregressive decoding): the same weights and
arithmetic as ``forward`` on a (B, 1, d) input, written on (B, d) rows so that an exported step graph
has no reshapes around its matrix products and no boolean-mask handling per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.config import MoEConfig, TransformerConfig
from wamdiff_ros.models.moe import LoRAMoE


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        prefix_kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        out_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, N, d); ``prefix_kv`` (2, B, heads, M, head_dim); ``mask`` bool (True = attend) or
        float (added to the scores), broadcastable to (B, heads, N, M + N); ``out_rows``: attend for the
        last rows only. Returns the output (B, out_rows or N, d) and this call's (2, B, heads, N, hd)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv
        kv = qkv[1:]
        if out_rows is not None:
            q, n = q[:, :, -out_rows:], out_rows
            if mask is not None and mask.dim() >= 2 and mask.shape[-2] > 1:
                mask = mask[..., -out_rows:, :]
        if prefix_kv is not None:
            k = torch.cat([prefix_kv[0], k], dim=2)
            v = torch.cat([prefix_kv[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d)), kv

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token ``x`` (B, d) over cached ``keys`` and ``values`` (B, heads, L, head_dim) and itself;
        ``bias`` (L + 1,) is added to the attention scores (0: attend, -inf: masked; the last entry is the
        token itself). Returns the output (B, d) and the token's key and value (B, heads, 1, head_dim)."""
        b, d = x.shape
        q, k, v = self.qkv(x).view(b, 3 * self.heads, 1, self.head_dim).split(self.heads, dim=1)
        scores = (q * self.head_dim**-0.5) @ torch.cat([keys, k], dim=2).transpose(2, 3)
        y = torch.softmax(scores + bias, dim=-1) @ torch.cat([values, v], dim=2)
        return self.out(y.reshape(b, d)), k, v


class CrossAttention(nn.Module):
    """Attention of queries (B, N, d) over keys/values (B, M, d) (scaled dot product; exports to ONNX)."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(x).view(b, n, self.heads, hd).transpose(1, 2)
        k, v = self.kv(mem).view(b, mem.shape[1], 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, moe: MoEConfig):
        super().__init__()
        d = cfg.d_model
        hidden = round(cfg.mlp_ratio * d)
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, cfg.heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.moe = LoRAMoE(d, moe) if moe.routing != "none" else None
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        prefix_kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        groups: list[tuple[int, int]] | None = None,
        collect_stats: bool = False,
        out_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        a, kv = self.attn(self.ln1(x), prefix_kv, mask, out_rows)
        if out_rows is not None:
            x = x[:, -out_rows:]
        x = x + (a if self.drop is None else self.drop(a))
        h = self.ln2(x)
        y = self.mlp(h)
        aux: dict = {}
        if self.moe is not None:
            m, aux = self.moe(h, groups, collect_stats)
            y = y + m
        return x + (y if self.drop is None else self.drop(y)), kv, aux

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` of one token (B, d) over a static cache (see :meth:`Attention.step`)."""
        a, k, v = self.attn.step(self.ln1(x), keys, values, bias)
        x = x + (a if self.drop is None else self.drop(a))
        h = self.ln2(x)
        y = self.mlp(h)
        if self.moe is not None:
            y = y + self.moe(h.unsqueeze(1))[0].squeeze(1)
        return x + (y if self.drop is None else self.drop(y)), k, v


class Transformer(nn.Module):
    """A stack of :class:`Block`; ``forward`` returns the output, the per-layer key/values stacked as
    (layers, 2, B, heads, N, head_dim), and per-layer MoE aux dicts."""

    def __init__(self, cfg: TransformerConfig, moe: MoEConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, moe) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(
        self,
        x: torch.Tensor,
        prefix_kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        groups: list[tuple[int, int]] | None = None,
        collect_stats: bool = False,
        out_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
        if out_rows is not None and (groups is not None or not 0 < out_rows <= x.shape[1]):
            raise ValueError(f"Transformer: out_rows expected 1..{x.shape[1]} and no MoE groups, got {out_rows}")
        kvs, auxes = [], []
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            rows = out_rows if i == last else None
            x, kv, aux = blk(x, None if prefix_kv is None else prefix_kv[i], mask, groups, collect_stats, rows)
            kvs.append(kv)
            auxes.append(aux)
        return self.ln_f(x), torch.stack(kvs), auxes

    def step(
        self, x: torch.Tensor, cache: Sequence[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token ``x`` (B, d) over ``cache``, per layer the cached keys and values (B, heads, L,
        head_dim) (separate tensors: an exported graph copies every slice it takes of a larger one), with
        the additive score ``bias`` (L + 1,) of :meth:`Attention.step` -> output (B, d) and the token's
        key/values (layers, 2, B, heads, 1, head_dim)."""
        kvs = []
        for blk, (keys, values) in zip(self.blocks, cache, strict=True):
            x, k, v = blk.step(x, keys, values, bias)
            kvs += [k, v]
        b, heads, _, hd = kvs[0].shape
        return self.ln_f(x), torch.cat(kvs).view(len(self.blocks), 2, b, heads, 1, hd)
