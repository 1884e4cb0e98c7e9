"""The autoregressive loop around ``prefill`` and one-token ``decode`` (torch network or exported graphs).

Per frame: prefill the prefix; the first answer token is ``[THINK]`` (slow: reasoning words until the
model emits ``[ACT]`` or the word limit forces it) or ``[ACT]`` (fast, already fed by the prefill); then
one action token per pose, each but the last fed back.
Every choice is restricted to the tokens allowed at its position (:meth:`AutoVLANet.kind_masks`).
The mode is the model's first token unless ``choose_slow`` overrides it (a forced mode, or a budget
that a slow pass would not fit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from wamdiff_ros.planners.autovla.net import ACTION, MODE_POS, REASON, REASON_END


@dataclass
class Answer:
    """One decoded answer.

    Attributes:
        tokens: answer token ids (mode token, reasoning, ``[ACT]``, actions).
        kinds: kind of each position (:data:`~wamdiff_ros.planners.autovla.net.MODE_POS` …).
        chosen: whether each token was chosen by the policy (False: forced by the mode override or the word limit).
        logp: log-probability of each token under the restricted, tempered distribution (0 where forced).
        p_think: the model's probability of ``[THINK]`` as first token.
        slow: whether the answer reasons first.
        actions: the action token ids (0…K−1).
        action_probs: probability of each chosen action token.
        reasoning_ms, decode_calls: time spent on reasoning tokens and number of decode calls.
    """

    tokens: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    chosen: list[bool] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    p_think: float = 0.0
    slow: bool = False
    actions: list[int] = field(default_factory=list)
    action_probs: list[float] = field(default_factory=list)
    reasoning_words: int = 0
    decode_calls: int = 0


def _pick(logits, allowed, temperature: float, generator) -> tuple[int, float, float]:
    """(token, log-prob, prob) from logits (V,) restricted to ``allowed`` (greedy at temperature 0)."""
    z = torch.where(allowed, logits.float(), float("-inf"))
    if temperature > 0:
        logp = torch.log_softmax(z / temperature, -1)
        tok = int(torch.multinomial(logp.exp(), 1, generator=generator))
    else:
        logp = torch.log_softmax(z, -1)
        tok = int(torch.argmax(z))
    lp = float(logp[tok])
    return tok, lp, math.exp(lp)


@torch.no_grad()
def decode_answer(
    net,
    kind_masks: torch.Tensor,
    inputs: tuple,
    num_actions: int,
    max_words: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    choose_slow: Callable[[float], tuple[bool, int]] | None = None,
    on_reasoning_done: Callable[[], None] | None = None,
) -> Answer:
    """Decode one answer for ``inputs`` (images, ego, prompt with batch 1) on ``net`` (``prefill`` and
    ``decode`` as :class:`AutoVLANet`'s, ``think_id``/``act_id``/``action_offset``).

    ``choose_slow(p_think) -> (slow, max_words)`` overrides the model's first token (None: the model's
    own choice, sampled at ``temperature`` > 0); ``on_reasoning_done`` is called when the reasoning ends
    (timing of the slow pass)."""
    logits, act_logits, cache = net.prefill(*inputs)
    logits = logits[0]
    kind_masks = kind_masks[:, : logits.shape[-1]]  # the logits cover the live vocabulary
    pos = net.cfg.prefix_len
    ans = Answer()
    mode_allowed = kind_masks[MODE_POS]
    two = torch.log_softmax(logits.float()[[net.think_id, net.act_id]], -1)
    ans.p_think = float(two[0].exp())
    if choose_slow is None:
        tok, lp, _ = _pick(logits, mode_allowed, temperature, generator)
        chosen = True
    else:
        slow, max_words = choose_slow(ans.p_think)
        tok, lp, chosen = (net.think_id if slow else net.act_id), 0.0, False
    ans.slow = tok == net.think_id

    def push(token: int, kind: int, was_chosen: bool, logp: float) -> None:
        ans.tokens.append(token)
        ans.kinds.append(kind)
        ans.chosen.append(was_chosen)
        ans.logp.append(logp if was_chosen else 0.0)

    def feed(token: int):
        nonlocal logits, cache, pos
        out, cache = net.decode(token, pos, cache)
        logits = out[0]
        pos += 1
        ans.decode_calls += 1

    push(tok, MODE_POS, chosen, lp)
    if not ans.slow:
        logits, pos = act_logits[0], pos + 1
    else:
        feed(tok)
        limit = max_words if choose_slow is not None else net.cfg.layout.reasoning_len
        limit = min(limit, net.cfg.layout.reasoning_len)
        while True:
            if ans.reasoning_words >= limit:
                push(net.act_id, REASON_END, False, 0.0)
                feed(net.act_id)
                break
            tok, lp, _ = _pick(logits, kind_masks[REASON], temperature, generator)
            push(tok, REASON, True, lp)
            feed(tok)
            if tok == net.act_id:
                break
            ans.reasoning_words += 1
        if on_reasoning_done is not None:
            on_reasoning_done()
    for t in range(num_actions):
        tok, lp, p = _pick(logits, kind_masks[ACTION], temperature, generator)
        push(tok, ACTION, True, lp)
        ans.actions.append(tok - net.action_offset)
        ans.action_probs.append(p)
        if t + 1 < num_actions:
            feed(tok)
    return ans


__all__ = ["Answer", "decode_answer"]
