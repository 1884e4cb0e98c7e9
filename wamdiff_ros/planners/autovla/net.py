"""AutoVLA's network: one causal transformer over [scene tokens, ego, prompt, answer], with a KV cache.

Token ids of the answer vocabulary (size V): the text tokenizer's ids, then ``[THINK]``, ``[ACT]``, then
the K action tokens. The prefix (scene, ego, prompt) attends to itself bidirectionally; every answer
token attends to the whole prefix and to the answer tokens before it (causal), so decoding one token
at a time over the cache gives exactly the logits of a teacher-forced pass (:meth:`forward_train`).

Decoding (:meth:`prefill`, :meth:`decode_step`) computes logits for the live vocabulary only, the
first :attr:`AutoVLANet.live_vocab` ids (text, ``[THINK]``, ``[ACT]`` and the fitted codebook's tokens):
the head's rows for action tokens a fitted codebook does not use can never be chosen.

The cache has the static length ``cfg.max_len``: :meth:`prefill` fills the prefix and, speculatively,
the answer's first position with ``[ACT]`` (the fast answer's mode token, so that a fast answer needs
no decode call before its first action; a slow answer overwrites that position with ``[THINK]``);
:meth:`decode_step` reads the cache with every position from ``pos`` on masked and returns the new
token's key/value, which the loop writes at ``pos``. The exported graphs keep static shapes while the
loop stays outside.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wamdiff_ros.models.checkpoint import load_checkpoint, load_state
from wamdiff_ros.models.config import MoEConfig
from wamdiff_ros.models.encoder import SceneEncoder
from wamdiff_ros.models.text_tokenizer import TextTokenizer
from wamdiff_ros.models.transformer import Transformer
from wamdiff_ros.planners.autovla.codebook import ActionCodebook, Box
from wamdiff_ros.planners.autovla.config import ModelConfig

MODE_POS, REASON, REASON_END, ACTION, PAD = 0, 1, 2, 3, 4
"""Kinds of answer position: the mode token, a reasoning word (or ``[ACT]``), a forced ``[ACT]`` after
the longest reasoning, an action token, padding after the answer."""

MAX_STRAIGHT_STEP_M = 20.0
"""Longest primitive of an unfitted model's placeholder codebook (straight steps 0…20 m)."""


def placeholder_primitives(size: int) -> np.ndarray:
    """Straight primitives 0…MAX_STRAIGHT_STEP_M m (an untrained model's codebook, before fitting)."""
    return np.stack([np.linspace(0.0, MAX_STRAIGHT_STEP_M, size), np.zeros(size), np.zeros(size)], 1)


class AutoVLANet(nn.Module):
    """See the module docstring. ``cfg.codebook.primitives`` (else a placeholder) gives the codebook."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextTokenizer.from_tokens(cfg.text_tokens) if cfg.text_tokens else TextTokenizer(cfg.vocab)
        self.set_codebook(np.asarray(cfg.codebook.primitives) if cfg.codebook.primitives else None)
        d = cfg.transformer.d_model
        self.think_id = len(self.text)
        self.act_id = self.think_id + 1
        self.action_offset = self.act_id + 1
        self.vocab_size = self.action_offset + cfg.codebook.size
        self.encoder = SceneEncoder(cfg.rig_obj, cfg.encoder, d)
        self.embed = nn.Embedding(self.vocab_size, d)
        self.pos_emb = nn.Parameter(torch.randn(cfg.max_len, d) * 0.02)
        self.transformer = Transformer(cfg.transformer, MoEConfig(routing="none"))
        self.head = nn.Linear(d, self.vocab_size)

    @property
    def live_vocab(self) -> int:
        """Ids that decoding can emit: text, ``[THINK]``, ``[ACT]``, the codebook's action tokens."""
        return self.action_offset + len(self.codebook)

    def _decode_head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (…, live_vocab) of hidden states ``h``."""
        n = self.live_vocab
        return F.linear(h, self.head.weight[:n], self.head.bias[:n])

    def set_codebook(self, primitives: np.ndarray | None) -> None:
        """Use ``primitives`` (K' ≤ codebook.size rows) as the action codebook and record them in ``cfg``
        (None: the placeholder)."""
        cb = self.cfg.codebook
        box = Box(cb.box_length, cb.box_width)
        self._kind_masks = None
        if primitives is None:
            self.codebook = ActionCodebook(placeholder_primitives(cb.size), box)
            return
        if len(primitives) > cb.size:
            raise ValueError(f"codebook: {len(primitives)} primitives exceed codebook.size {cb.size}")
        self.codebook = ActionCodebook(primitives, box)
        cb.primitives = self.codebook.primitives.tolist()

    # -- token kinds -----------------------------------------------------------------------------------
    def kind_masks(self) -> torch.Tensor:
        """(5, V) bool: tokens allowed at each kind of answer position (PAD: none); one tensor per
        codebook, shared by the callers (read-only)."""
        if self._kind_masks is None:
            self._kind_masks = self._make_kind_masks()
        return self._kind_masks

    def _make_kind_masks(self) -> torch.Tensor:
        v = self.vocab_size
        m = torch.zeros(5, v, dtype=torch.bool)
        m[MODE_POS, [self.think_id, self.act_id]] = True
        m[REASON, list(self.text.word_ids)] = True
        m[REASON, self.act_id] = True
        m[REASON_END, self.act_id] = True
        m[ACTION, self.action_offset : self.action_offset + len(self.codebook)] = True
        return m

    def answer_kinds(self, answer: list[int]) -> list[int]:
        """Kinds of the positions of one answer's tokens (see :data:`MODE_POS` …)."""
        kinds, state, words = [], MODE_POS, 0
        for tok in answer:
            kinds.append(state)
            if state == MODE_POS:
                state = REASON if tok == self.think_id else ACTION
            elif state in (REASON, REASON_END):
                if tok == self.act_id:
                    state = ACTION
                else:
                    words += 1
                    state = REASON_END if words >= self.cfg.layout.reasoning_len else REASON
        return kinds

    def answer_ids(self, reasoning: str, actions: np.ndarray) -> list[int]:
        """The target answer: ``[THINK] words [ACT] actions`` when ``reasoning`` is non-empty, else
        ``[ACT] actions`` (words truncated to ``layout.reasoning_len``)."""
        acts = [self.action_offset + int(a) for a in actions]
        words = self.text.encode(reasoning)[: self.cfg.layout.reasoning_len] if reasoning else []
        return ([self.think_id, *words] if words else []) + [self.act_id, *acts]

    def prompt_ids(self, command: str, instruction: str) -> np.ndarray:
        """(prompt_len,) int64: ``[BOS] command [SEP] instruction``, truncated and padded with ``[PAD]``."""
        t = self.text
        ids = [t.bos_id, *t.encode(command or ""), t.sep_id, *t.encode(instruction or "")]
        p = self.cfg.layout.prompt_len
        return np.array((ids + [t.pad_id] * p)[:p], np.int64)

    # -- forward passes --------------------------------------------------------------------------------
    def _prefix(self, images, ego, prompt) -> torch.Tensor:
        x = torch.cat([self.encoder(images, ego), self.embed(prompt)], dim=1)
        return x + self.pos_emb[: x.shape[1]]

    def prefill(self, images, ego, prompt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images uint8 (B, C, H, W, 3), ego (B, F), prompt (B, P) -> logits of the first answer token
        (B, live_vocab), logits of the token after a first ``[ACT]`` (B, live_vocab) and the cache (layers, 2, B, heads,
        max_len, head_dim): the prefix, ``[ACT]`` at ``prefix_len``, zero after."""
        logits, act_logits, kv = self.prefill_kv(images, ego, prompt)
        tc = self.cfg.transformer
        rest = (tc.layers, 2, images.shape[0], tc.heads, self.cfg.answer_len - 1, tc.d_model // tc.heads)
        return logits, act_logits, torch.cat([kv, kv.new_zeros(rest)], dim=4)

    def prefill_kv(self, images, ego, prompt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`prefill` with the key/values of the prefix and ``[ACT]`` alone (layers, 2, B, heads,
        prefix_len + 1, head_dim): the exported graph's output, which the loop copies into its cache."""
        x0 = self._prefix(images, ego, prompt)
        p0 = x0.shape[1]
        act = self.embed.weight[self.act_id] + self.pos_emb[p0]
        x = torch.cat([x0, act.expand(x0.shape[0], 1, -1)], dim=1)
        mask = torch.zeros(p0 + 1, p0 + 1)
        mask[:p0, p0] = float("-inf")  # the prefix never sees the answer
        h, kv, _ = self.transformer(x, None, mask.to(x.device), out_rows=2)
        logits = self._decode_head(h)
        return logits[:, 0], logits[:, 1], kv

    def decode_step(self, token, pos, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """token int64 (B, 1) at position ``pos`` int64 (1,) on ``cache`` (positions before ``pos`` filled):
        the (layers, 2, B, heads, max_len, head_dim) tensor or, per layer, its keys and values -> logits of
        the next token (B, live_vocab) and this token's key/value (layers, 2, B, heads, 1, head_dim)."""
        if isinstance(cache, torch.Tensor):
            cache = [(layer[0], layer[1]) for layer in cache]
        L = self.cfg.max_len
        x = self.embed(token[:, 0]) + self.pos_emb.index_select(0, pos)
        idx = torch.arange(L + 1, device=pos.device)
        bias = torch.where((idx < pos) | (idx == L), 0.0, float("-inf"))
        h, kv = self.transformer.step(x, cache, bias)
        return self._decode_head(h), kv

    def decode(self, token: int, pos: int, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the decoding loop: :meth:`decode_step` of token id ``token`` at position ``pos`` (for
        every batch row of ``cache``), then its key/value written into ``cache`` in place; returns the
        logits and the cache."""
        dev = cache.device
        t = torch.full((cache.shape[2], 1), token, dtype=torch.long, device=dev)
        logits, kv = self.decode_step(t, torch.tensor([pos], device=dev), cache)
        cache[..., pos : pos + 1, :] = kv
        return logits, cache

    def forward_train(self, images, ego, prompt, answer) -> torch.Tensor:
        """Teacher-forced logits (B, A, V) of every token of ``answer`` (B, A) (padding after the end is
        fed but never seen by earlier positions)."""
        x0 = self._prefix(images, ego, prompt)
        p0, a = x0.shape[1], answer.shape[1]
        x = torch.cat([x0, self.embed(answer[:, :-1]) + self.pos_emb[p0 : p0 + a - 1]], dim=1)
        n = x.shape[1]
        i = torch.arange(n, device=x.device)
        mask = (i[None, :] < p0) | (i[None, :] <= i[:, None])
        h, _, _ = self.transformer(x, None, mask)
        return self.head(h[:, p0 - 1 :])

    # -- checkpoint ------------------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {**self.cfg.to_dict(), "text_tokens": list(self.text.tokens)}

    @classmethod
    def load(cls, path: str | os.PathLike) -> AutoVLANet:
        doc, tensors = load_checkpoint(path)
        cfg = ModelConfig.from_dict(doc["config"], f"checkpoint {path}")
        net = cls(cfg)
        load_state(net, tensors, str(path))
        return net.eval()


__all__ = ["ACTION", "MODE_POS", "PAD", "REASON", "REASON_END", "AutoVLANet", "placeholder_primitives"]
