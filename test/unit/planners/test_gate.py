"""The shared fast/slow gate, with WAM-Diff's slow path (reasoning steps + one key/value pass, then
trajectory steps) as the declared cost."""

import pytest

from wamdiff_ros.config import ConfigError
from wamdiff_ros.planners.gate import FastSlowGate, GateConfig, SlowStep
from wamdiff_ros.planners.wamdiff.config import DecodingConfig
from wamdiff_ros.planners.wamdiff.planner import slow_path


def wamdiff_gate(cfg: GateConfig, ema: float = 0.3, steps: tuple[int, int] = (8, 8)) -> FastSlowGate:
    """The gate with WAM-Diff's declared slow path of ``(reasoning, trajectory)`` steps."""
    return FastSlowGate(cfg, slow_path(DecodingConfig(reasoning_steps=steps[0], slow_steps=steps[1])), ema)


def _rec(g: FastSlowGate, reasoning_ms: float, trajectory_ms: float, steps=None) -> None:
    g.record_slow_pass({"reasoning": reasoning_ms, "trajectory": trajectory_ms}, steps)


def _gate(**kw):
    """A gate whose shortest slow pass is the full one (8 + 8 steps), unless ``min_slow_steps`` says otherwise."""
    return wamdiff_gate(
        GateConfig(**{"theta": 0.6, "c_min": 0.4, "slow_cost_ms": 30.0, "min_slow_steps": (8, 8), **kw})
    )


def test_simple_confident_scene_stays_fast():
    d = _gate().decide(p_complex=0.2, confidence=0.9)
    assert not d.slow and "simple" in d.reason


def test_complex_scene_or_low_confidence_goes_slow():
    d = _gate().decide(p_complex=0.8, confidence=0.9)
    assert d.slow and "p_complex" in d.reason
    d = _gate().decide(p_complex=0.1, confidence=0.3)
    assert d.slow and "confidence" in d.reason
    d = _gate().decide(p_complex=0.6, confidence=0.4)  # both at the threshold: strict comparisons
    assert not d.slow


def test_budget_blocks_slow_path_that_does_not_fit():
    g = _gate()
    assert g.decide(0.9, 0.9, budget_ms=100.0, elapsed_ms=20.0).slow
    d = g.decide(0.9, 0.9, budget_ms=45.0, elapsed_ms=20.0)
    assert not d.slow and "needs ~30 ms at the fewest steps, 25 ms left" in d.reason
    assert g.decide(0.9, 0.9, budget_ms=None, elapsed_ms=1e6).slow


def test_a_slow_pass_that_does_not_fit_is_shortened_trajectory_steps_first():
    g = wamdiff_gate(GateConfig(slow_cost_ms=68.0, min_slow_steps=(2, 4)), steps=(8, 8))  # 4 ms per call (17)
    full = g.decide(0.9, 0.9, budget_ms=100.0, elapsed_ms=20.0)
    assert full.slow and full.steps == (8, 8) and "shortened" not in full.reason
    d = g.decide(0.9, 0.9, budget_ms=80.0, elapsed_ms=20.0)  # 60 ms: 15 calls = 6 reasoning + 8 trajectory + 1
    assert d.slow and d.steps == (6, 8) and "shortened to 6 + 8 steps for the 60 ms left" in d.reason
    assert g.decide(0.9, 0.9, budget_ms=52.0, elapsed_ms=20.0).steps == (2, 5)  # 32 ms: 8 calls
    assert g.decide(0.9, 0.9, budget_ms=48.0, elapsed_ms=20.0).steps == (2, 4)  # 28 ms: exactly the shortest
    refused = g.decide(0.9, 0.9, budget_ms=47.0, elapsed_ms=20.0)
    assert not refused.slow and refused.steps is None and "needs ~28 ms at the fewest steps" in refused.reason
    assert g.decide(0.9, 0.9, budget_ms=None).steps == (8, 8)
    assert _gate(mode="slow").decide(0.0, 1.0, budget_ms=1.0).steps == (8, 8)  # forced slow: the full pass
    assert not g.decide(0.1, 0.9, budget_ms=100.0).steps


def test_reasoning_and_trajectory_steps_are_costed_apart_and_short_passes_inform_the_full_estimate():
    g = wamdiff_gate(GateConfig(slow_cost_ms=30.0, min_slow_steps=(2, 4)), ema=0.5, steps=(8, 8))
    _rec(g, 15.0, 10.0, steps=(2, 4))  # 5 ms per reasoning call (3), 2.5 ms per trajectory step (4)
    assert g.per_call_ms == {"reasoning": 5.0, "trajectory": 2.5}
    assert g.slow_cost_ms == pytest.approx(9 * 5.0 + 8 * 2.5)
    assert g.short_steps(39.0) == (2, 8) and g.short_steps(40.0) == (3, 8)  # reasoning cut first: 5 ms a step
    assert g.short_steps(34.0) == (2, 7)  # then trajectory steps: 15 + 17.5 ms
    assert g.short_steps(25.0) == (2, 4) and g.short_steps(24.9) is None
    _rec(g, 45.0, 20.0)  # the full pass at the same per-call costs: the estimate stays
    assert g.slow_cost_ms == pytest.approx(65.0)
    with pytest.raises(ConfigError, match="min_slow_steps"):
        GateConfig(min_slow_steps=(0, 4))
    with pytest.raises(ValueError, match="steps"):
        wamdiff_gate(GateConfig(), steps=(8, 0))
    with pytest.raises(ValueError, match="one kind per gate.min_slow_steps"):
        FastSlowGate(GateConfig(min_slow_steps=(2, 4)), (SlowStep("denoise", 10),))


def test_a_single_kind_slow_path_is_shortened_down_to_its_minimum():
    """A family whose slow path is one kind of call (e.g. more denoising steps) uses the same gate."""
    g = FastSlowGate(GateConfig(slow_cost_ms=20.0, min_slow_steps=(4,)), (SlowStep("denoise", 10),))
    assert g.per_call_ms == {"denoise": 2.0} and g.slow_cost_ms == 20.0
    d = g.decide(0.9, 0.9, budget_ms=30.0, elapsed_ms=16.0)  # 14 ms: 7 steps
    assert d.slow and d.steps == (7,) and "shortened to 7 steps" in d.reason
    assert not g.decide(0.9, 0.9, budget_ms=30.0, elapsed_ms=23.0).slow  # 7 ms < 4 steps
    g.record_slow_pass({"denoise": 30.0}, (10,))
    assert g.slow_cost_ms == pytest.approx(30.0)


def test_a_slow_pass_must_fit_with_two_deviations_of_the_measured_passes_to_spare():
    g = wamdiff_gate(GateConfig(slow_cost_ms=68.0, min_slow_steps=(2, 4)), ema=0.5, steps=(8, 8))
    _rec(g, 36.0, 32.0)  # 4 ms a call: exactly the estimate
    assert g.margin == 1.0 and g.short_steps(68.0) == (8, 8)
    _rec(g, 54.0, 48.0)  # 102 ms against 68 expected: 50 % off -> deviation 0.25
    assert g.deviation == pytest.approx(0.25) and g.margin == pytest.approx(1.5)
    assert g.slow_cost_ms == pytest.approx(85.0)  # 5 ms a call
    assert g.short_steps(127.5) == (8, 8) and g.short_steps(127.0) == (7, 8)
    refused = g.decide(0.9, 0.9, budget_ms=40.0, elapsed_ms=20.0)
    assert not refused.slow  # 2 + 4 steps take 35 ms x 1.5 > the 20 ms left
    assert g.deviation == pytest.approx(0.125)  # a refusal shrinks the margin too


def test_measured_slow_cost_replaces_prior_then_averages():
    g = wamdiff_gate(GateConfig(slow_cost_ms=30.0, min_slow_steps=(8, 8)), ema=0.5)
    _rec(g, 40.0, 40.0)
    assert g.slow_cost_ms == pytest.approx(80.0)
    _rec(g, 20.0, 20.0)
    assert g.slow_cost_ms == pytest.approx(60.0)
    assert not g.decide(0.9, 0.9, budget_ms=70.0, elapsed_ms=20.0).slow


def test_forgotten_slow_cost_is_the_prior_until_the_next_measurement_replaces_it():
    g = wamdiff_gate(GateConfig(slow_cost_ms=30.0), ema=0.5)
    _rec(g, 40.0, 40.0)
    g.forget_slow_cost()
    assert (g.slow_cost_ms, g.measured) == (30.0, 0)
    _rec(g, 25.0, 25.0)
    assert g.slow_cost_ms == pytest.approx(50.0)


def test_refusals_relax_an_outlier_estimate_until_slow_is_measured_again():
    g = wamdiff_gate(GateConfig(slow_cost_ms=30.0, min_slow_steps=(8, 8)), ema=0.3)
    _rec(g, 27.5, 27.5)
    _rec(g, 60.0, 60.0)  # one outlier: 0.7·55 + 0.3·120 = 74.5 ms > the 60 ms left below
    refusals = 0
    while not g.decide(0.9, 0.9, budget_ms=80.0, elapsed_ms=20.0).slow:
        refusals += 1
        assert refusals < 10, f"still refused after {refusals} frames (estimate {g.slow_cost_ms:.1f} ms)"
    assert refusals >= 2 and 55.0 <= g.slow_cost_ms <= 60.0


def test_refusals_do_not_relax_below_what_was_measured_or_without_a_measurement():
    g = wamdiff_gate(GateConfig(slow_cost_ms=90.0, min_slow_steps=(8, 8)))
    for _ in range(20):
        assert not g.decide(0.9, 0.9, budget_ms=80.0, elapsed_ms=20.0).slow
    assert g.slow_cost_ms == 90.0  # only the prior: nothing to relax toward
    _rec(g, 35.0, 35.0)  # even the cheapest measured pass does not fit in 60 ms
    for _ in range(50):
        assert not g.decide(0.9, 0.9, budget_ms=80.0, elapsed_ms=20.0).slow
    assert g.slow_cost_ms == pytest.approx(70.0)


def test_forced_modes():
    assert _gate(mode="slow").decide(0.0, 1.0, budget_ms=1.0, elapsed_ms=5.0).slow
    assert not _gate(mode="fast").decide(1.0, 0.0).slow
    with pytest.raises(ValueError, match="ema"):
        wamdiff_gate(GateConfig(), ema=0.0)
