"""Models and baselines side by side (``wamdiff compare``): one row each with open-loop PDMS / EPDMS on
logged frames (``wamdiff eval``'s runs, :mod:`.runs`), closed-loop figures on the same fresh episodes
(:mod:`.closed_loop`), planner latency p50 over the closed-loop plan calls, parameter count and
checkpoint size; as JSON rows and as a Markdown table for the README and the model cards.

Baselines: ``constant_velocity`` (the constant-velocity planner, open loop and through the planner
loop in closed loop) and ``expert`` (open loop its logged future, closed loop the expert driving the
episodes itself, the reference every closed-loop run is measured against).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from wamdiff_ros.evaluation.tables import format_cell

BASELINES = ("constant_velocity", "expert")

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("label", "model", "{}"),
    ("family", "family", "{}"),
    ("open_loop_pdms", "PDMS (open loop)", "{:.3f}"),
    ("open_loop_epdms", "EPDMS (open loop)", "{:.3f}"),
    ("route_completion", "route completion", "{:.3f}"),
    ("completed", "routes completed", "{:.0%}"),
    ("at_fault_collisions", "at-fault collisions", "{:d}"),
    ("collisions", "all collisions", "{:d}"),
    ("timeouts", "timeouts", "{:d}"),
    ("closed_loop_pdms", "PDMS (closed loop)", "{:.3f}"),
    ("driving_score", "driving score", "{:.1f}"),
    ("speed_vs_expert", "speed / expert", "{:.2f}"),
    ("latency_p50_ms", "latency p50 ms", "{:.1f}"),
    ("parameters_m", "parameters (M)", "{:.2f}"),
    ("size_mb", "checkpoint MB", "{:.1f}"),
)
"""Row key, column header, format of the table (a missing or NaN value shows as "-")."""


def checkpoint_size_mb(folder: str | Path) -> float:
    """Size of a checkpoint's files (config.json and the weights) [MB]."""
    from wamdiff_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    files = [Path(folder) / name for name in (CONFIG_FILE, WEIGHTS_FILE)]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


def parameter_count(planner) -> int:
    net = planner.network()
    return 0 if net is None else sum(p.numel() for p in net.parameters())


def open_loop_scores(
    models: dict[str, Path], baselines: Sequence[str], data: Sequence[str], every: int, mode: str, max_frames=None
) -> tuple[dict[str, dict], dict[str, object]]:
    """``label -> {PDMS, EPDMS, frames}`` of each model (eager, in ``mode``) on the frames of ``data``, and
    of the baselines on the first model's frames; and ``label -> planner`` of the models."""
    from wamdiff_ros.evaluation.tasks import EvalSource, evaluate_runs, open_runs

    names = tuple(b for b in baselines if b in BASELINES)
    scores, planners = {}, {}
    for i, (label, folder) in enumerate(models.items()):
        source = EvalSource(tuple(data), str(folder), (mode,), names if i == 0 else ())
        runs = open_runs(source)
        planners[label] = runs.planner
        results = evaluate_runs(runs, every, max_frames)
        scores[label] = _scores(results[runs.labels[0]])
        for name in names if i == 0 else ():
            scores[name] = _scores(results["expert_log" if name == "expert" else name])
    if names and not models:
        runs = open_runs(EvalSource(tuple(data), None, (mode,), names))
        results = evaluate_runs(runs, every, max_frames)
        for name in names:
            scores[name] = _scores(results["expert_log" if name == "expert" else name])
    return scores, planners


def _scores(result: dict) -> dict:
    a = result["aggregate"]
    return {"PDMS": a["PDMS"], "EPDMS": a["EPDMS"], "frames": a["frames"]}


def closed_loop_row(summary: dict) -> dict:
    """The closed-loop columns of a row from a run's overall summary (``summarize_drives(...)["all"]``)."""
    return {
        "route_completion": summary["route_completion"],
        "completed": summary["completed"],
        "at_fault_collisions": summary["at_fault_collisions"],
        "collisions": summary["collisions"],
        "timeouts": summary["timeouts"],
        "closed_loop_pdms": summary["mean_pdms"],
        "driving_score": summary["driving_score"],
        "speed_vs_expert": summary.get("speed_vs_expert", math.nan),
        "latency_p50_ms": summary["planner_ms_p50"],
    }


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows as a GitHub Markdown table (:data:`COLUMNS`)."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" if k in ("label", "family") else "---:" for k, _, _ in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row.get(k), fmt) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def print_table(rows: Sequence[dict], title: str, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, (_, header, _) in enumerate(COLUMNS):
        table.add_column(header, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*[format_cell(row.get(k), fmt) for k, _, fmt in COLUMNS])
    Console(file=file or sys.stdout, width=200).print(table)


__all__ = [
    "BASELINES",
    "COLUMNS",
    "checkpoint_size_mb",
    "closed_loop_row",
    "markdown_table",
    "open_loop_scores",
    "parameter_count",
    "print_table",
]
