"""The RL run's report: curves (PNG) and a before/after table of NAVSIM sub-metrics on held-out bags.

``<out>/report/``: ``curves.png`` (rollout reward, validation PDMS), ``compare.json`` (the aggregates
of the starting and the tuned model on the same frames), ``README.md`` (tables).
"""

from __future__ import annotations

import json
from pathlib import Path

from wamdiff_ros.atomic import atomic_write_json, atomic_write_text
from wamdiff_ros.evaluation.tables import METRIC_COLUMNS, OPEN_LOOP_COLUMNS

REPORT = "report"


def compare_models(models: dict[str, str], bags: list[str], every: int, modes=("fast",), threads: int = 2) -> dict:
    """Open-loop evaluation of each ``label -> checkpoint`` on the same frames of ``bags`` per mode;
    returns ``{f"{label}/{mode}": aggregate}`` (``{label: aggregate}`` for a family with one path)."""
    import torch

    from wamdiff_ros.evaluation import evaluate_open_loop
    from wamdiff_ros.evaluation.runs import model_runs, planner_dataset
    from wamdiff_ros.planners.base import load_planner

    torch.set_num_threads(threads)
    out: dict[str, dict] = {}
    dataset = None
    for label, path in models.items():
        planner = load_planner(path)
        if dataset is None:
            dataset = planner_dataset(bags, planner, scenes=False)
        for run, view in model_runs(planner, modes, label).items():
            out[run] = evaluate_open_loop(view, dataset, every, progress=True)["aggregate"]
    return out


def _table(results: dict[str, dict]) -> str:
    cols = [*METRIC_COLUMNS, "C", *OPEN_LOOP_COLUMNS]
    lines = ["| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, a in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{a[c]:.3f}" if c in a else "–" for c in cols) + " |")
    return "\n".join(lines)


def _per_scenario(results: dict[str, dict]) -> str:
    names = sorted({s for a in results.values() for s in a["by_scenario"]})
    lines = ["| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, a in results.items():
        cells = [f"{a['by_scenario'][n]['PDMS']:.3f}" if n in a["by_scenario"] else "–" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(run: str | Path, compare: dict[str, dict] | None = None, test_info: str = "") -> Path:
    """Write ``<run>/report/`` from the run's ``history.json`` and an optional :func:`compare_models`
    result; returns the report folder."""
    from wamdiff_ros.reporting.plots import plot_rl_curves
    from wamdiff_ros.training.rl.trainer import HISTORY

    run = Path(run)
    history_file = run / HISTORY
    if not history_file.is_file():
        raise FileNotFoundError(f"rl report: {history_file} is missing (not an RL run folder)")
    history = json.loads(history_file.read_text())
    folder = run / REPORT
    folder.mkdir(parents=True, exist_ok=True)
    plot_rl_curves(folder / "curves.png", history["steps"], history["validations"])
    val = [v for v in history["validations"] if "PDMS" in v]
    md = [f"# RL fine-tuning report: {run.name}", "", "![curves](curves.png)", ""]
    if history["steps"]:
        last = history["steps"][-1]
        md.append(
            f"{len(history['steps'])} optimiser steps in {last['train_seconds'] / 60:.1f} min; rollout reward "
            f"{history['steps'][0]['reward_mean']:.3f} (first step) → {last['reward_mean']:.3f} (last step)."
        )
    if val:
        best = max(val, key=lambda v: v["PDMS"])
        md.append(
            f"Validation PDMS (fast path): start {val[0]['PDMS']:.4f}, best {best['PDMS']:.4f} at step "
            f"{best['step']}, last {val[-1]['PDMS']:.4f}."
        )
    if compare:
        atomic_write_json(folder / "compare.json", compare)
        md += ["", f"## Before / after{': ' + test_info if test_info else ''}", "", _table(compare), ""]
        md += ["### PDMS per scenario", "", _per_scenario(compare), ""]
    atomic_write_text(folder / "README.md", "\n".join(md) + "\n")
    return folder


__all__ = ["REPORT", "compare_models", "write_report"]
