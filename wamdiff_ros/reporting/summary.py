"""Markdown summaries of evaluation results."""

from __future__ import annotations

from wamdiff_ros.scoring.metrics import SUB_METRICS, TOTALS


def _f(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def replay_summary(report: dict) -> str:
    """The summary.md of ``wamdiff replay``: what was evaluated, totals, sub-metrics, open-loop metrics,
    latency, modes, per-scenario scores and MoE balance, from the metrics.json ``report``."""
    agg = report["aggregate"]
    lat = agg["latency_ms"]
    lines = [
        "# Open-loop replay",
        "",
        f"- bag: `{', '.join(report['bags'])}`",
        f"- model: `{report['model']}` (family `{report['family']}`)",
        f"- frames: {agg['frames']} (every {report['every']} of {report['samples']} samples)",
        "",
        "## Scores (NAVSIM)",
        "",
        "| " + " | ".join(TOTALS + SUB_METRICS) + " |",
        "|" + "---|" * (len(TOTALS) + len(SUB_METRICS)),
        "| " + " | ".join(_f(agg[k]) for k in TOTALS + SUB_METRICS) + " |",
        "",
        "## Open loop",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in ("l2_1s", "l2_2s", "l2_3s", "l2_avg_3s", "ade", "fde", "collision_rate_3s", "at_fault_collision_rate"):
        if key in agg:
            unit = " [m]" if key.startswith(("l2", "ade", "fde")) else ""
            lines.append(f"| {key}{unit} | {_f(agg[key])} |")
    lines += [
        "",
        "## Planner",
        "",
        f"- latency: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, mean {lat['mean']:.2f} ms, "
        f"max {lat['max']:.2f} ms",
        f"- fast / slow rate: {agg['fast_rate']:.3f} / {agg['slow_rate']:.3f}",
    ]
    moe = agg.get("moe")
    if moe:
        cv2 = ", ".join(f"{v:.3f}" for v in moe["load_cv2"])
        lines.append(
            f"- MoE load CV² per layer: {cv2}"
            + (f"; mean routing entropy {moe['entropy_mean']:.3f}" if "entropy_mean" in moe else "")
        )
    lines += ["", "## By scenario", "", "| scenario | frames | PDMS | EPDMS |", "|---|---|---|---|"]
    for name, s in agg["by_scenario"].items():
        lines.append(f"| {name} | {s['frames']} | {_f(s['PDMS'])} | {_f(s['EPDMS'])} |")
    plots = report.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots[:1]] + [f"- `{p}`" for p in plots]
    return "\n".join(lines) + "\n"
