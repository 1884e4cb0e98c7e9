"""Adaptive fast/slow gate, shared by every family with two reasoning paths.

Fast thinking plans directly and cheaply; slow thinking spends more calls (for example a reasoning
text, then a plan conditioned on it). Per frame the gate goes slow when the scene looks complex — a
learned complexity probability ``p_complex > theta`` — or when the fast plan is unsure — its
confidence ``< c_min`` — and only if a slow pass fits in what is left of ``budget_ms``: the full one
when it fits, else a shorter one with fewer steps, down to ``GateConfig.min_slow_steps``.

What a slow pass costs is declared by the family as :class:`SlowStep` kinds (a name, the steps of the
full pass, fixed extra calls per pass). The cost model has one per-call cost per kind, each an
exponential moving average of measured slow passes, starting from ``GateConfig.slow_cost_ms`` spread
evenly over the full pass's calls; a pass must fit with two mean deviations of the measured passes
from their estimates to spare. When shortening, the last declared kind keeps its steps longest.

A refused slow pass is not measured, so one slow outlier could lift the average above what the budget
leaves for good; each refusal therefore relaxes the estimate toward the cheapest recent measurement,
and the slow path is measured again after a few refusals unless even that cheapest pass would not
fit. The decision is recorded, never assumed (AutoVLA issue #54: a gate that always picks one mode
goes unnoticed unless it is reported).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wamdiff_ros.config import ConfigError
from wamdiff_ros.planners.base import MODES


@dataclass
class GateConfig:
    """Fast/slow gate settings (a family's checkpoint config holds one).

    Attributes:
        mode: ``adaptive`` (gate decides), ``fast`` or ``slow`` (forced).
        theta: go slow when the complexity probability exceeds this.
        c_min: go slow when the fast plan's confidence is below this.
        slow_cost_ms: prior estimate of the full slow pass's cost until it has been measured.
        min_slow_steps: steps of the shortest slow pass, one per :class:`SlowStep` kind in the family's
            order: a full pass that does not fit in what is left of the budget is shortened, not below these.
    """

    mode: str = "adaptive"
    theta: float = 0.5
    c_min: float = 0.5
    slow_cost_ms: float = 40.0
    min_slow_steps: tuple[int, ...] = (2, 4)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"gate.mode: expected one of {MODES}, got {self.mode!r}")
        if not (0 <= self.theta <= 1 and 0 <= self.c_min <= 1 and self.slow_cost_ms >= 0):
            raise ConfigError(f"gate: expected theta, c_min in [0, 1] and slow_cost_ms >= 0, got {self}")
        steps = tuple(self.min_slow_steps)
        if not steps or not all(isinstance(n, int) and n >= 1 for n in steps):
            raise ConfigError(
                f"gate.min_slow_steps: expected one step count >= 1 per kind, got {self.min_slow_steps!r}"
            )
        self.min_slow_steps = steps


@dataclass(frozen=True)
class SlowStep:
    """One kind of call of a family's slow pass.

    Attributes:
        name: the kind (``reasoning``, ``trajectory`` …), the key of measured times.
        steps: calls of this kind in the full slow pass.
        extra_calls: calls of this kind a pass makes whatever its steps (a key/value pass after a block).
    """

    name: str
    steps: int
    extra_calls: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.extra_calls < 0:
            raise ValueError(f"slow step {self.name!r}: expected steps >= 1 and extra_calls >= 0, got {self}")


@dataclass
class GateDecision:
    """Whether to run the slow path, and why (``reason`` is a short human-readable phrase)."""

    slow: bool
    reason: str
    p_complex: float
    confidence: float
    slow_cost_ms: float
    steps: tuple[int, ...] | None = None
    """Steps per :class:`SlowStep` kind of the slow pass to run (None when fast)."""


class FastSlowGate:
    """The gate and its cost model: a pass with steps ``n_k`` costs ``Σ (n_k + extra_k)·per_call_ms[k]``.

    Args:
        cfg: thresholds, the prior cost, the shortest slow pass.
        slow_path: the kinds of call of the full slow pass (at least one; as many as ``min_slow_steps``).
        ema: weight of a new measurement in the moving averages.
    """

    RECENT = 20
    """Measured slow passes whose cheapest a refused slow pass relaxes the estimate toward."""
    MARGIN_DEVIATIONS = 2.0
    """A slow pass must fit with this many mean relative deviations of measured passes from the
    estimate to spare (as TCP's retransmission timeout: mean + 4 deviations; 2 here, a soft budget)."""

    def __init__(self, cfg: GateConfig, slow_path: Sequence[SlowStep], ema: float = 0.3):
        self.cfg = cfg
        if not 0 < ema <= 1:
            raise ValueError(f"FastSlowGate.ema: expected in (0, 1], got {ema}")
        self.slow_path = tuple(slow_path)
        if not self.slow_path or len(self.slow_path) != len(cfg.min_slow_steps):
            raise ValueError(
                f"FastSlowGate.slow_path: expected one kind per gate.min_slow_steps entry "
                f"({len(cfg.min_slow_steps)}), got {[k.name for k in self.slow_path]}"
            )
        self.ema = ema
        self.steps = tuple(k.steps for k in self.slow_path)
        self._recent: deque[float] = deque(maxlen=self.RECENT)
        self.forget_slow_cost()

    def forget_slow_cost(self) -> None:
        """Back to the prior, so that the next measurement replaces it (a family's warm-up uses this)."""
        calls = sum(k.steps + k.extra_calls for k in self.slow_path)
        self.per_call_ms = {k.name: float(self.cfg.slow_cost_ms) / calls for k in self.slow_path}
        self.deviation = 0.0
        self.measured = 0
        self._recent.clear()

    def _pass_ms(self, steps: Sequence[int], per_call: Mapping[str, float]) -> float:
        return sum((n + k.extra_calls) * per_call[k.name] for n, k in zip(steps, self.slow_path))

    def cost_ms(self, steps: Sequence[int]) -> float:
        """Estimated time [ms] of a slow pass with ``steps`` (one per kind)."""
        return self._pass_ms(steps, self.per_call_ms)

    @property
    def slow_cost_ms(self) -> float:
        """Estimated time [ms] of the full slow pass."""
        return self.cost_ms(self.steps)

    @property
    def min_steps(self) -> tuple[int, ...]:
        """``GateConfig.min_slow_steps``, capped by the full pass's steps."""
        return tuple(min(m, n) for m, n in zip(self.cfg.min_slow_steps, self.steps))

    @property
    def margin(self) -> float:
        """Factor on the estimated cost a pass must fit with: ``1 + MARGIN_DEVIATIONS · deviation``."""
        return 1.0 + self.MARGIN_DEVIATIONS * self.deviation

    def short_steps(self, left_ms: float) -> tuple[int, ...] | None:
        """The longest slow pass that fits in ``left_ms`` by the estimate and its :attr:`margin`: the
        full steps, else fewer (the last kind's steps kept first), None when not even ``min_slow_steps`` fit."""
        ranges = [range(n, m - 1, -1) for n, m in zip(self.steps[::-1], self.min_steps[::-1])]
        for rev in itertools.product(*ranges):
            steps = rev[::-1]
            if self.cost_ms(steps) * self.margin <= left_ms:
                return steps
        return None

    def record_slow_pass(self, times_ms: Mapping[str, float], steps: Sequence[int] | None = None) -> None:
        """Fold a measured slow pass with ``steps`` (None: the full pass) — ``times_ms[kind]`` for all
        the calls of each kind — into the per-call estimates (the first measurement replaces the prior)."""
        steps = tuple(steps or self.steps)
        measured = {k.name: float(times_ms[k.name]) / (n + k.extra_calls) for n, k in zip(steps, self.slow_path)}
        if self.measured == 0:
            self.per_call_ms = dict(measured)
        else:
            expected = self.cost_ms(steps)
            miss = abs(sum(float(times_ms[k.name]) for k in self.slow_path) - expected) / expected
            self.deviation += self.ema * (miss - self.deviation)
            for name, ms in measured.items():
                self.per_call_ms[name] += self.ema * (ms - self.per_call_ms[name])
        self.measured += 1
        self._recent.append(self._pass_ms(self.steps, measured))

    def _relax(self) -> None:
        """After a refusal: move the estimate a step toward the cheapest recent measured pass and shrink
        the margin (a refused pass is not measured, so neither would come down otherwise)."""
        if not self._recent:
            return
        self.deviation *= 1.0 - self.ema
        full = self.slow_cost_ms
        factor = 1.0 + self.ema * (min(self._recent) - full) / full
        for name in self.per_call_ms:
            self.per_call_ms[name] *= factor

    def decide(
        self, p_complex: float, confidence: float, budget_ms: float | None = None, elapsed_ms: float = 0.0
    ) -> GateDecision:
        """Decide for one frame. ``confidence`` is the fast plan's confidence (pass 1.0 when there was
        no fast pass); ``elapsed_ms`` is the time already spent on this frame."""
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
            why += f"; shortened to {' + '.join(map(str, steps))} steps for the {left:.0f} ms left"
        return GateDecision(True, why, p_complex, confidence, self.slow_cost_ms, steps)


def seed_slow_cost(planner, gate: FastSlowGate, obs, passes: int = 2) -> float:
    """Plan ``obs`` ``passes`` times in slow mode, each from a forgotten estimate, so that ``gate``'s
    slow-cost estimate [ms] is the last, warm pass (returned); ``planner``'s mode is restored.

    The first run of each graph is slower (allocations, cold caches); an estimate seeded by it can make
    the gate refuse every slow pass within a tight budget, and a refused slow pass is never measured again.
    """
    if passes < 1:
        raise ValueError(f"{planner.family}.warm_up: passes must be >= 1, got {passes}")
    mode = planner.mode
    planner.set_mode("slow")
    try:
        for _ in range(passes):
            gate.forget_slow_cost()
            planner.plan(obs, None)
    finally:
        planner.set_mode(mode)
    return gate.slow_cost_ms


__all__ = ["FastSlowGate", "GateConfig", "GateDecision", "SlowStep", "seed_slow_cost"]
