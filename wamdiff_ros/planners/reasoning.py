"""Adaptive fast/slow reasoning gate.

Fast thinking plans the trajectory directly with few decoding steps; slow thinking first writes a
reasoning text and then plans conditioned on it with more steps (AutoVLA's fast/slow modes on
WAM-Diff's masked diffusion). Per frame the gate goes slow when the scene looks complex — the learned
complexity head's ``p_complex > theta`` — or when the fast pass is unsure — its mean trajectory token
confidence ``< c_min`` — and only if a slow pass fits in what is left of ``budget_ms``: the full one
(``decoding.reasoning_steps`` + ``decoding.slow_steps``) when it fits, else a shorter one with fewer
steps, down to ``GateConfig.min_slow_steps``, trajectory steps kept before reasoning steps. On the
validation split slow-only PDMS hardly depends on the steps (full 8 + 8: 0.806; 4 + 4: 0.808; 2 + 4:
0.805; 2 + 8: 0.808) while the cost scales with them, so a short pass is worth running where a full
one would be refused (on this VM the full pass takes 54–85 ms against the 60 ms an 80 ms budget
leaves after the fast pass, and one demo run refused every slow pass). The cost model (see
:class:`ReasoningGate`) has one per-call cost for reasoning and one for trajectory steps, each an
exponential moving average of measured slow passes, starting from ``GateConfig.slow_cost_ms`` spread
evenly over the full pass's calls, and a pass must fit with two mean deviations of the measured
passes from their estimates to spare. A refused slow pass is not measured, so one slow outlier could lift
the average above what the budget leaves for good (on the test split's frames that want slow, that
shut the slow path off for their second half); each refusal therefore relaxes the estimate toward the
cheapest recent measurement, and the slow path is measured again after a few refusals unless even
that cheapest pass would not fit. The decision is recorded, never assumed (AutoVLA issue #54: a gate
that always picks one mode goes unnoticed unless it is reported).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from wamdiff_ros.models.config import GateConfig


@dataclass
class GateDecision:
    """Whether to run the slow path, and why (``reason`` is a short human-readable phrase)."""

    slow: bool
    reason: str
    p_complex: float
    confidence: float
    slow_cost_ms: float
    steps: tuple[int, int] | None = None
    """``(reasoning, trajectory)`` decoding steps of the slow pass to run (None when fast)."""


def _pass_ms(steps: tuple[int, int], reasoning_call_ms: float, trajectory_step_ms: float) -> float:
    """Time [ms] of a slow pass with ``(reasoning, trajectory)`` steps at these per-call costs."""
    return (steps[0] + 1) * reasoning_call_ms + steps[1] * trajectory_step_ms


class ReasoningGate:
    """The gate and its cost model of the slow pass: ``(r + 1)·reasoning_call_ms + s·trajectory_step_ms``
    for ``r`` reasoning steps (plus the reasoning's key/value pass) and ``s`` trajectory steps. The two
    per-call costs differ (72 reasoning tokens per call against 16 trajectory tokens: 5.4 against 2.3 ms
    with the default model on this VM), so each is measured on its own.

    Args:
        cfg: thresholds, the prior cost, the shortest slow pass.
        ema: weight of a new measurement in the moving averages.
        steps: ``(reasoning, trajectory)`` decoding steps of the full slow pass.
    """

    RECENT = 20
    """Measured slow passes whose cheapest a refused slow pass relaxes the estimate toward."""
    MARGIN_DEVIATIONS = 2.0
    """A slow pass must fit with this many mean relative deviations of measured passes from the
    estimate to spare (as TCP's retransmission timeout: mean + 4 deviations; 2 here, a soft budget)."""

    def __init__(self, cfg: GateConfig | None = None, ema: float = 0.3, steps: tuple[int, int] = (8, 8)):
        self.cfg = cfg or GateConfig()
        if not 0 < ema <= 1:
            raise ValueError(f"ReasoningGate.ema: expected in (0, 1], got {ema}")
        if len(steps) != 2 or min(steps) < 1:
            raise ValueError(f"ReasoningGate.steps: expected (reasoning, trajectory) steps >= 1, got {steps}")
        self.ema = ema
        self.steps = (int(steps[0]), int(steps[1]))
        self._recent: deque[float] = deque(maxlen=self.RECENT)
        self.forget_slow_cost()

    def forget_slow_cost(self) -> None:
        """Back to the prior, so that the next measurement replaces it (see :meth:`WamDiffPlanner.warm_up`)."""
        per_call = float(self.cfg.slow_cost_ms) / (self.steps[0] + self.steps[1] + 1)
        self.reasoning_call_ms = self.trajectory_step_ms = per_call
        self.deviation = 0.0
        self.measured = 0
        self._recent.clear()

    def cost_ms(self, steps: tuple[int, int]) -> float:
        """Estimated time [ms] of a slow pass with ``steps``."""
        return _pass_ms(steps, self.reasoning_call_ms, self.trajectory_step_ms)

    @property
    def slow_cost_ms(self) -> float:
        """Estimated time [ms] of the full slow pass."""
        return self.cost_ms(self.steps)

    @property
    def min_steps(self) -> tuple[int, int]:
        """``GateConfig.min_slow_steps``, capped by the full pass's steps."""
        return min(self.cfg.min_slow_steps[0], self.steps[0]), min(self.cfg.min_slow_steps[1], self.steps[1])

    @property
    def margin(self) -> float:
        """Factor on the estimated cost a pass must fit with: ``1 + MARGIN_DEVIATIONS · deviation``."""
        return 1.0 + self.MARGIN_DEVIATIONS * self.deviation

    def short_steps(self, left_ms: float) -> tuple[int, int] | None:
        """The longest slow pass that fits in ``left_ms`` by the estimate and its :attr:`margin`: the
        full steps, else fewer (trajectory steps kept first), None when not even ``min_slow_steps`` fit."""
        r_min, s_min = self.min_steps
        for s in range(self.steps[1], s_min - 1, -1):
            for r in range(self.steps[0], r_min - 1, -1):
                if self.cost_ms((r, s)) * self.margin <= left_ms:
                    return r, s
        return None

    def record_slow_pass(self, reasoning_ms: float, trajectory_ms: float, steps: tuple[int, int] | None = None) -> None:
        """Fold a measured slow pass with ``steps`` (None: the full pass) — ``reasoning_ms`` for its
        reasoning steps and key/value pass, ``trajectory_ms`` for its trajectory steps — into the
        per-call estimates (the first measurement replaces the prior)."""
        r, s = steps or self.steps
        a, b = float(reasoning_ms) / (r + 1), float(trajectory_ms) / s
        if self.measured == 0:
            self.reasoning_call_ms, self.trajectory_step_ms = a, b
        else:
            expected = self.cost_ms((r, s))
            miss = abs(float(reasoning_ms) + float(trajectory_ms) - expected) / expected
            self.deviation += self.ema * (miss - self.deviation)
            self.reasoning_call_ms += self.ema * (a - self.reasoning_call_ms)
            self.trajectory_step_ms += self.ema * (b - self.trajectory_step_ms)
        self.measured += 1
        self._recent.append(_pass_ms(self.steps, a, b))

    def _relax(self) -> None:
        """After a refusal: move the estimate a step toward the cheapest recent measured pass and shrink
        the margin (a refused pass is not measured, so neither would come down otherwise)."""
        if not self._recent:
            return
        self.deviation *= 1.0 - self.ema
        full = self.slow_cost_ms
        factor = 1.0 + self.ema * (min(self._recent) - full) / full
        self.reasoning_call_ms *= factor
        self.trajectory_step_ms *= factor

    def decide(
        self, p_complex: float, confidence: float, budget_ms: float | None = None, elapsed_ms: float = 0.0
    ) -> GateDecision:
        """Decide for one frame. ``confidence`` is the fast pass's mean trajectory confidence (pass
        1.0 when there was no fast pass); ``elapsed_ms`` is the time already spent on this frame."""
        mode = self.cfg.mode
        if mode != "adaptive":
            steps = self.steps if mode == "slow" else None
            return GateDecision(mode == "slow", f"mode={mode}", p_complex, confidence, self.slow_cost_ms, steps)
        reasons = []
        if p_complex > self.cfg.theta:
            reasons.append(f"p_complex {p_complex:.2f} > {self.cfg.theta:.2f}")
        if confidence < self.cfg.c_min:
            reasons.append(f"confidence {confidence:.2f} < {self.cfg.c_min:.2f}")
        if not reasons:
            return GateDecision(False, "simple scene, confident fast plan", p_complex, confidence, self.slow_cost_ms)
        why = "; ".join(reasons)
        if budget_ms is None:
            return GateDecision(True, why, p_complex, confidence, self.slow_cost_ms, self.steps)
        left = budget_ms - elapsed_ms
        steps = self.short_steps(left)
        if steps is None:
            shortest = self.cost_ms(self.min_steps)
            why = f"slow wanted ({why}) but needs ~{shortest:.0f} ms at the fewest steps, {left:.0f} ms left"
            decision = GateDecision(False, why, p_complex, confidence, self.slow_cost_ms)
            self._relax()
            return decision
        if steps != self.steps:
            why += f"; shortened to {steps[0]} + {steps[1]} steps for the {left:.0f} ms left"
        return GateDecision(True, why, p_complex, confidence, self.slow_cost_ms, steps)
