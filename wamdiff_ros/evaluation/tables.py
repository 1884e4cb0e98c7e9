"""Tables of evaluation runs on the terminal: NAVSIM scores, open-loop metrics, modes and latency, PDMS per
scenario, MoE load per layer."""

from __future__ import annotations

import math
import sys

METRIC_COLUMNS = ("PDMS", "EPDMS", "NC", "DAC", "DDC", "TLC", "EP", "TTC", "LK", "HC", "EC")
OPEN_LOOP_COLUMNS = ("l2_1s", "l2_2s", "l2_3s", "ade", "fde", "collision_rate_3s", "at_fault_collision_rate")


def format_cell(value, fmt: str) -> str:
    """``value`` in format ``fmt`` (``{:d}`` takes a count), "-" for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(int(value) if fmt == "{:d}" else value)


def print_report(results: dict, file=None) -> None:
    """Tables of the runs: scores, open loop, modes and latency, per scenario, MoE."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=200)
    t = Table(title="open-loop scores (NAVSIM sub-metrics, means over frames)")
    t.add_column("run")
    for c in METRIC_COLUMNS + OPEN_LOOP_COLUMNS + ("slow", "p50 ms", "p99 ms"):
        t.add_column(
            c.replace("collision_rate_3s", "col3s").replace("at_fault_collision_rate", "NC=0"), justify="right"
        )
    for label, r in results.items():
        a = r["aggregate"]
        cells = [f"{a[c]:.3f}" for c in METRIC_COLUMNS] + [f"{a[c]:.3f}" if c in a else "-" for c in OPEN_LOOP_COLUMNS]
        cells += [f"{a['slow_rate']:.2f}", f"{a['latency_ms']['p50']:.1f}", f"{a['latency_ms']['p99']:.1f}"]
        t.add_row(label, *cells)
    console.print(t)
    scenarios = sorted({s for r in results.values() for s in r["aggregate"]["by_scenario"]})
    s = Table(title="per scenario: PDMS (slow-mode rate)")
    s.add_column("scenario")
    s.add_column("frames", justify="right")
    for label in results:
        s.add_column(label, justify="right")
    for name in scenarios:
        cells = []
        frames = 0
        for r in results.values():
            v = r["aggregate"]["by_scenario"].get(name)
            frames = v["frames"] if v else frames
            cells.append(f"{v['PDMS']:.3f} ({v['slow_rate']:.2f})" if v else "-")
        s.add_row(name, str(frames), *cells)
    console.print(s)
    for label, r in results.items():
        moe = r["aggregate"].get("moe")
        if not moe:
            continue
        m = Table(title=f"{label}: MoE expert load per layer (share of assignments), CV², router entropy")
        m.add_column("layer")
        m.add_column("load")
        m.add_column("CV²", justify="right")
        for i, (load, cv2) in enumerate(zip(moe["load_mean"], moe["load_cv2"], strict=False)):
            m.add_row(str(i), " ".join(f"{x:.2f}" for x in load), f"{cv2:.3f}")
        console.print(m)
        if "entropy_mean" in moe:
            console.print(f"  mean router entropy {moe['entropy_mean']:.3f} nats")
