"""Adaptive fast/slow reasoning gate.

Fast thinking plans the trajectory directly with few decoding steps; slow thinking first writes a
reasoning text and then plans conditioned on it with more steps (AutoVLA's fast/slow modes on
WAM-Diff's masked diffusion). Per frame the gate goes slow when the scene looks complex — the learned
complexity head's ``p_complex > theta`` — or when the fast pass is unsure — its mean trajectory token
confidence ``< c_min`` — and only if the slow path's measured cost fits in what is left of
``budget_ms``. The slow-path cost is an exponential moving average of measured slow passes, starting
from ``GateConfig.slow_cost_ms``. A refused slow pass is not measured, so one slow outlier could lift
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


class ReasoningGate:
    RECENT = 20
    """Measured slow passes whose cheapest a refused slow pass relaxes the estimate toward."""

    def __init__(self, cfg: GateConfig | None = None, ema: float = 0.3):
        self.cfg = cfg or GateConfig()
        if not 0 < ema <= 1:
            raise ValueError(f"ReasoningGate.ema: expected in (0, 1], got {ema}")
        self.ema = ema
        self.slow_cost_ms = float(self.cfg.slow_cost_ms)
        self.measured = 0
        self._recent: deque[float] = deque(maxlen=self.RECENT)

    def forget_slow_cost(self) -> None:
        """Back to the prior, so that the next measurement replaces it (see :meth:`WamDiffPlanner.warm_up`)."""
        self.slow_cost_ms = float(self.cfg.slow_cost_ms)
        self.measured = 0
        self._recent.clear()

    def record_slow_cost(self, ms: float) -> None:
        """Fold a measured slow-path time [ms] into the estimate (the first measurement replaces the prior)."""
        ms = float(ms)
        self.slow_cost_ms = ms if self.measured == 0 else (1 - self.ema) * self.slow_cost_ms + self.ema * ms
        self.measured += 1
        self._recent.append(ms)

    def decide(
        self, p_complex: float, confidence: float, budget_ms: float | None = None, elapsed_ms: float = 0.0
    ) -> GateDecision:
        """Decide for one frame. ``confidence`` is the fast pass's mean trajectory confidence (pass
        1.0 when there was no fast pass); ``elapsed_ms`` is the time already spent on this frame."""
        mode = self.cfg.mode
        if mode != "adaptive":
            return GateDecision(mode == "slow", f"mode={mode}", p_complex, confidence, self.slow_cost_ms)
        reasons = []
        if p_complex > self.cfg.theta:
            reasons.append(f"p_complex {p_complex:.2f} > {self.cfg.theta:.2f}")
        if confidence < self.cfg.c_min:
            reasons.append(f"confidence {confidence:.2f} < {self.cfg.c_min:.2f}")
        if not reasons:
            return GateDecision(False, "simple scene, confident fast plan", p_complex, confidence, self.slow_cost_ms)
        if budget_ms is not None:
            left = budget_ms - elapsed_ms
            if self.slow_cost_ms > left:
                why = f"slow wanted ({'; '.join(reasons)}) but needs ~{self.slow_cost_ms:.0f} ms, {left:.0f} ms left"
                decision = GateDecision(False, why, p_complex, confidence, self.slow_cost_ms)
                if self._recent:
                    self.slow_cost_ms += self.ema * (min(self._recent) - self.slow_cost_ms)
                return decision
        return GateDecision(True, "; ".join(reasons), p_complex, confidence, self.slow_cost_ms)
