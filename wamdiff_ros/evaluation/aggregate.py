"""Aggregate per-frame evaluation rows as they arrive.

:class:`RunningAggregate` keeps sums and counts, not rows, so an evaluation over any number of frames
holds one number per frame (its latency, for the percentiles) while the rows themselves go to disk
or away (``wamdiff eval --frames``). :func:`aggregate` is the same over a list of rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.scoring.metrics import SUB_METRICS, TOTALS

OPEN_LOOP_KEYS = ("l2_1s", "l2_2s", "l2_3s", "l2_avg_1s", "l2_avg_2s", "l2_avg_3s", "ade", "fde")
OPEN_LOOP_KEYS += ("col_1s", "col_2s", "col_3s", "col_avg_1s", "col_avg_2s", "col_avg_3s")
"""Open-loop metrics kept per frame (those on the planner's grid; UniAD "at" and VAD "avg" conventions)."""


@dataclass
class _Moe:
    """Sums of MoE loads (per layer and expert) and router entropies over the frames reporting them."""

    load: np.ndarray | None = None
    loads: int = 0
    entropy: float = 0.0
    entropies: int = 0

    def add(self, row: dict, load: np.ndarray | None) -> None:
        if load is not None:
            load = np.asarray(load, np.float64)
            self.load = load.copy() if self.load is None else self.load + load
            self.loads += 1
        if "moe_entropy" in row:
            self.entropy += float(row["moe_entropy"])
            self.entropies += 1

    def summary(self) -> dict:
        """Mean load per layer and expert, its CV² per layer (0 = perfectly balanced), mean entropy."""
        per_layer = (self.load / self.loads).reshape(-1, self.load.shape[-1])
        cv2 = per_layer.var(-1) / np.maximum(per_layer.mean(-1) ** 2, 1e-12)
        out = {"load_mean": per_layer.round(4).tolist(), "load_cv2": cv2.round(4).tolist()}
        if self.entropies:
            out["entropy_mean"] = self.entropy / self.entropies
        return out


@dataclass
class _Scenario:
    frames: int = 0
    slow: int = 0
    totals: dict = field(default_factory=lambda: dict.fromkeys(TOTALS, 0.0))
    moe: _Moe = field(default_factory=_Moe)


class RunningAggregate:
    """Means of every per-frame metric, latency p50/p99/mean/max [ms], fast/slow rates, collision rates
    (at fault: NC = 0; open-loop box overlap within 3 s), per-scenario PDMS/EPDMS and slow-mode rate,
    and mean MoE load per layer and expert with its CV² and router entropy, overall and per scenario.

    Rows must share their metric keys (those of the first row); ``add`` them in any number, read
    :meth:`result` at any time.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.keys: list[str] = []
        self.sums: dict[str, float] = {}
        self.latency: list[float] = []
        self.modes: Counter = Counter()
        self.at_fault = 0
        self.collided_3s: int | None = None
        self.scenarios: dict[str, _Scenario] = {}
        self.moe = _Moe()

    def add(self, row: dict, moe_load: np.ndarray | None = None) -> None:
        """Count one frame's ``row`` and, when the planner reported one, its MoE ``moe_load``."""
        if not self.frames:
            self.keys = [*TOTALS, *SUB_METRICS, *[k for k in OPEN_LOOP_KEYS if k in row]]
            self.sums = dict.fromkeys(self.keys, 0.0)
            self.collided_3s = 0 if "col_avg_3s" in row else None
        self.frames += 1
        for k in self.keys:
            self.sums[k] += float(row[k])
        self.latency.append(float(row["latency_ms"]))
        self.modes[row["mode"]] += 1
        self.at_fault += row["NC"] == 0.0
        if self.collided_3s is not None:
            self.collided_3s += row["col_avg_3s"] > 0
        scenario = self.scenarios.setdefault(row["scenario"], _Scenario())
        scenario.frames += 1
        scenario.slow += row["mode"] == "slow"
        for t in TOTALS:
            scenario.totals[t] += float(row[t])
        self.moe.add(row, moe_load)
        scenario.moe.add(row, moe_load)

    def result(self) -> dict:
        """The aggregate as a JSON-able dict; ValueError when no frame was added."""
        if not self.frames:
            raise ValueError("aggregate: no frames")
        n = self.frames
        out: dict = {"frames": n, **{k: self.sums[k] / n for k in self.keys}}
        lat = np.asarray(self.latency)
        out["latency_ms"] = {
            "mean": float(lat.mean()),
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
        }
        out["fast_rate"] = self.modes["fast"] / n
        out["slow_rate"] = self.modes["slow"] / n
        out["at_fault_collision_rate"] = self.at_fault / n
        if self.collided_3s is not None:
            out["collision_rate_3s"] = self.collided_3s / n
        by_scenario = {}
        for name in sorted(self.scenarios):
            s = self.scenarios[name]
            by_scenario[name] = {
                "frames": s.frames,
                "slow_rate": s.slow / s.frames,
                **{t: s.totals[t] / s.frames for t in TOTALS},
            }
            if s.moe.loads:
                by_scenario[name]["moe"] = s.moe.summary()
        out["by_scenario"] = by_scenario
        if self.moe.loads:
            out["moe"] = self.moe.summary()
        return out


def aggregate(rows: Sequence[dict], moe_loads: Sequence[np.ndarray | None] | None = None) -> dict:
    """:meth:`RunningAggregate.result` of ``rows``; ``moe_loads`` (None, or one per row, None where the
    planner reported none)."""
    if moe_loads is not None and len(moe_loads) != len(rows):
        raise ValueError(f"aggregate: expected one MoE load (or None) per row, got {len(moe_loads)} for {len(rows)}")
    acc = RunningAggregate()
    for row, load in zip(rows, moe_loads if moe_loads is not None else [None] * len(rows)):
        acc.add(row, load)
    return acc.result()


__all__ = ["OPEN_LOOP_KEYS", "RunningAggregate", "aggregate"]
