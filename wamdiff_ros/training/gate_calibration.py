"""Calibrate the fast/slow reasoning gate's thresholds on evaluated frames.

Input: the same frames planned once in fast mode (each row with the complexity head's ``p_complex``
and the fast pass's mean token confidence ``fast_confidence``) and once in slow mode. For every
threshold pair the gate's decision ``p_complex > theta or fast_confidence < c_min`` picks the fast or
the slow plan's score per frame, which gives the adaptive planner's mean score and slow-mode rate
without re-planning. The chosen pair maximises the mean score among pairs whose slow rate lies in
``[min_slow_rate, max_slow_rate]`` (the latency budget; a gate that never fires is a defect, so the
floor is above 0); ties go to the lower slow rate.

Fit on validation frames, report on test frames: scores on the frames used to fit are optimistic. A
family with a gate writes the chosen thresholds into its own checkpoints.
"""

from __future__ import annotations

import numpy as np


def gate_table(fast_rows: list[dict], slow_rows: list[dict], metric: str = "PDMS") -> dict[str, np.ndarray]:
    """Per-frame arrays ``p_complex``, ``confidence``, ``fast``, ``slow`` (scores), matched by frame index."""
    slow_by_index = {r["index"]: r for r in slow_rows}
    rows = [(r, slow_by_index[r["index"]]) for r in fast_rows if r["index"] in slow_by_index]
    if not rows:
        raise ValueError("gate calibration: the fast and slow runs share no frames")
    missing = [r["index"] for r, _ in rows if "p_complex" not in r or "fast_confidence" not in r]
    if missing:
        raise ValueError(
            f"gate calibration: fast-mode rows need 'p_complex' and 'fast_confidence' (missing at {missing[:5]})"
        )
    return {
        "p_complex": np.array([f["p_complex"] for f, _ in rows]),
        "confidence": np.array([f["fast_confidence"] for f, _ in rows]),
        "fast": np.array([f[metric] for f, _ in rows]),
        "slow": np.array([s[metric] for _, s in rows]),
    }


def calibrate_gate(
    fast_rows: list[dict],
    slow_rows: list[dict],
    max_slow_rate: float = 0.5,
    min_slow_rate: float = 0.02,
    metric: str = "PDMS",
) -> dict:
    """Best ``theta`` / ``c_min`` (see the module docstring) with the expected adaptive score, its slow
    rate, and the fast-only, slow-only and per-frame-oracle scores for comparison."""
    if not 0 <= min_slow_rate <= max_slow_rate <= 1:
        raise ValueError(
            f"gate calibration: expected 0 <= min_slow_rate <= max_slow_rate <= 1, got {min_slow_rate}, {max_slow_rate}"
        )
    t = gate_table(fast_rows, slow_rows, metric)
    thetas = np.unique(np.concatenate([np.linspace(0.0, 1.0, 41), np.quantile(t["p_complex"], np.linspace(0, 1, 41))]))
    c_mins = np.unique(np.concatenate([[0.0], np.quantile(t["confidence"], np.linspace(0, 1, 41))]))
    best = None
    for theta in thetas:
        by_head = t["p_complex"] > theta
        for c_min in c_mins:
            slow = by_head | (t["confidence"] < c_min)
            rate = float(slow.mean())
            if not min_slow_rate <= rate <= max_slow_rate:
                continue
            score = float(np.where(slow, t["slow"], t["fast"]).mean())
            key = (round(score, 9), -rate)
            if best is None or key > best[0]:
                best = (key, float(theta), float(c_min), rate, score)
    out = {
        "metric": metric,
        "frames": len(t["fast"]),
        "fast_only": float(t["fast"].mean()),
        "slow_only": float(t["slow"].mean()),
        "oracle": float(np.maximum(t["fast"], t["slow"]).mean()),
        "slow_better_rate": float((t["slow"] > t["fast"]).mean()),
        "max_slow_rate": max_slow_rate,
        "min_slow_rate": min_slow_rate,
    }
    if best is None:
        out["found"] = False
        return out
    _, theta, c_min, rate, score = best
    return {**out, "found": True, "theta": theta, "c_min": c_min, "slow_rate": rate, "adaptive": score}


__all__ = ["calibrate_gate", "gate_table"]
