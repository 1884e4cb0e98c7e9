"""``wamdiff closedloop``: closed-loop evaluation of a checkpoint of any family in the embedded world, in
process, on fresh seeds, against the expert on the same episodes (:mod:`.closed_loop`; docs/closed-loop.md).

Prints a table per scenario and overall; ``--json`` writes the report after every episode
(``complete`` turns true at the end); ``--traces DIR`` writes per episode ``<scenario>-<seed>.npz``
(per-tick arrays of the planner, ``planner_*``, and of the expert, ``expert_*``), ``.json`` (the
episode's record) and ``.png`` (speed and route progress over time, planner against expert).
"""

from __future__ import annotations

import argparse
import os
import time

from wamdiff_ros.distributed import fanout

MODES = ("fast", "slow", "adaptive")
BACKENDS = ("torch", "onnxruntime", "tensorrt")
NODE_KEYS = ("reasoning_mode", "backend", "device", "precision", "threads")
"""planner_node parameters recorded in the report."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint folder (absolute, or under models/)")
    parser.add_argument("--json", metavar="OUT", help="write the report (per episode and summary) to this JSON file")
    parser.add_argument("--traces", metavar="DIR", help="write a per-tick trace, record and speed plot per episode")
    add_closed_loop_arguments(parser)


def add_closed_loop_arguments(parser: argparse.ArgumentParser) -> None:
    """The episode, planner and fan-out options of ``wamdiff closedloop`` (``wamdiff compare`` has them too)."""
    from wamdiff_ros.sim.scenarios import DEMO_SCENARIOS

    parser.add_argument("--episodes", type=int, default=48, help="episodes, round-robin over the scenarios (48)")
    parser.add_argument(
        "--split",
        choices=("closedloop", "val"),
        default="closedloop",
        help="seed split (default closedloop, which nothing trains or tunes on; val: for tuning a setting)",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=list(DEMO_SCENARIOS),
        help="scenario names (default: the demo's six types, " + ", ".join(DEMO_SCENARIOS) + ")",
    )
    parser.add_argument("--mode", choices=MODES, default=None, help="reasoning mode (default: planner_node's)")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="inference backend (default: planner_node's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="device (default: planner_node's)")
    parser.add_argument("--threads", type=int, default=None, help="inference CPU threads (default: planner_node's)")
    parser.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="reasoning budget per cycle (default: none, so the gate decides by the scene alone and runs "
        "repeat; planner_node's 80 makes the gate's choices depend on this machine's speed)",
    )
    parser.add_argument(
        "--max-duration", type=float, default=0.0, metavar="S", help="cut episodes at S s (0: each scenario's own)"
    )
    parser.add_argument("--score-every", type=int, default=5, help="score the plan every N ticks (0: no PDMS)")
    parser.add_argument(
        "--image-format", choices=("jpeg", "raw"), default="jpeg", help="camera images as JPEG (default) or raw"
    )
    fanout.add_arguments(parser)


def node_overrides(args: argparse.Namespace) -> dict:
    """planner_node parameters the command's options set (unset options keep the node's defaults)."""
    overrides = {}
    for key, value in (("reasoning_mode", args.mode), ("backend", args.backend), ("device", args.device)):
        if value is not None:
            overrides[key] = value
    if args.threads is not None:
        if args.threads < 0:
            raise ValueError(f"--threads: expected >= 0, got {args.threads}")
        overrides["threads"] = args.threads
    return overrides


def model_driver(model: str, args: argparse.Namespace, label: str | None = None):
    """The DriverSpec of checkpoint ``model`` with the command's planner options over planner_node's
    parameters, labelled ``label`` (default: the checkpoint folder's name)."""
    from wamdiff_ros.evaluation.closed_loop import DriverSpec, node_params
    from wamdiff_ros.planning.model import resolve_model

    params = node_params(**node_overrides(args), model_path=str(model))
    label = label or resolve_model(str(model)).name
    return DriverSpec(label, "model", params, args.budget_ms, args.image_format)


def check_common(args: argparse.Namespace) -> None:
    """The closed-loop options shared with ``wamdiff compare``; ValueError naming the bad one."""
    if args.episodes < 1:
        raise ValueError(f"--episodes: expected >= 1, got {args.episodes}")
    if args.score_every < 0:
        raise ValueError(f"--score-every: expected >= 0, got {args.score_every}")
    if not args.max_duration >= 0:
        raise ValueError(f"--max-duration: expected >= 0 s, got {args.max_duration}")
    if args.budget_ms is not None and not args.budget_ms > 0:
        raise ValueError(f"--budget-ms: expected > 0, got {args.budget_ms}")


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.evaluation.closed_loop import (
        DriverSpec,
        build_planner,
        episode_record,
        episodes,
        run_drivers,
        run_info,
        summarize_drives,
    )
    from wamdiff_ros.runtime.base import BackendUnavailable
    from wamdiff_ros.sim.scenarios import load_scenarios

    try:
        check_common(args)
        scenarios = load_scenarios(args.scenarios)
        episode_list = episodes(scenarios, args.episodes, args.max_duration, args.split)
        workers = fanout.workers_from_args(args)
        spec = model_driver(args.model, args)
        described = build_planner(spec).describe()  # checked (and its graphs exported) before any worker starts
    except (ValueError, FileNotFoundError, BackendUnavailable) as e:
        raise SystemExit(f"wamdiff closedloop: {e}") from None
    expert = DriverSpec("expert", "expert")
    t_start = time.perf_counter()
    records: list[dict] = []
    report = {
        "model": spec.params["model_path"],
        "planner": described,
        "settings": {
            "split": args.split,
            "episodes": args.episodes,
            "scenarios": [s.name for s in scenarios],
            "max_duration_s": args.max_duration,
            "score_every": args.score_every,
            "budget_ms": args.budget_ms,
            "image_format": args.image_format,
            "planner_node": {k: spec.params[k] for k in NODE_KEYS},
        },
        "complete": False,
    }

    def write(drives=None, experts=None) -> None:
        if not args.json:
            return
        if drives is not None:
            report["summary"] = summarize_drives(drives, experts)
            report["expert_summary"] = summarize_drives(experts)
        report["episodes"] = records
        report["run"] = run_info(workers, time.perf_counter() - t_start)
        atomic_write_json(args.json, report)

    done: dict[str, list] = {spec.label: [], expert.label: []}

    def on_episode(_index: int, drives: dict) -> None:
        drive, reference = drives[spec.label], drives[expert.label]
        records.append(episode_record(drive, reference))
        done[spec.label].append(drive)
        done[expert.label].append(reference)
        if args.traces:
            write_trace(args.traces, records[-1], drive, reference)
        write(done[spec.label], done[expert.label])

    drives = run_drivers(
        [expert, spec],
        episode_list,
        workers,
        score_every=args.score_every,
        trace=bool(args.traces),
        on_episode=on_episode,
        desc=f"closedloop {spec.label}",
    )
    summary = summarize_drives(drives[spec.label], drives[expert.label])
    print_summary(summary, f"closed loop: {spec.label} against the expert, {len(episode_list)} {args.split} episodes")
    report["complete"] = True
    write(drives[spec.label], drives[expert.label])
    wall = time.perf_counter() - t_start
    print(f"{len(episode_list)} episodes in {wall:.0f} s (load average {os.getloadavg()[0]:.1f})")
    if args.json:
        print(f"wamdiff closedloop: wrote {args.json}")
    return 0


def write_trace(folder, record: dict, drive, expert) -> None:
    """``<scenario>-<seed>`` .npz, .json and .png under ``folder`` (see the module docstring)."""
    from pathlib import Path

    import numpy as np

    from wamdiff_ros.atomic import atomic_path, atomic_write_json
    from wamdiff_ros.reporting.plots import plot_speed_profiles

    m = drive.metrics
    base = Path(folder) / f"{m.scenario}-{m.seed}"
    arrays = {f"planner_{k}": v for k, v in drive.trace.items()}
    arrays.update({f"expert_{k}": v for k, v in expert.trace.items()})
    with atomic_path(base.with_suffix(".npz")) as tmp:
        np.savez_compressed(tmp, **arrays)
    atomic_write_json(base.with_suffix(".json"), record)
    e = expert.metrics
    title = (
        f"{m.scenario} seed {m.seed}: planner {m.reason}, completion {m.route_completion:.2f}, "
        f"{m.mean_speed:.1f} m/s; expert {e.reason}, {e.route_completion:.2f}, {e.mean_speed:.1f} m/s"
    )
    plot_speed_profiles(base.with_suffix(".png"), title, drive.trace, expert.trace)


def print_summary(summary: dict, title: str) -> None:
    """The per-scenario table of :func:`~wamdiff_ros.evaluation.closed_loop.summarize_drives` (with the expert)."""
    from rich.console import Console
    from rich.table import Table

    from wamdiff_ros.evaluation.tables import format_cell

    table = Table(title=title)
    heads = ["scenario", "eps", "compl.", "done", "at-fault / all coll.", "kinds", "timeouts", "off-road"]
    heads += ["speed / expert m/s", "expert compl.", "PDMS", "DS", "p50 / p99 ms", "slow"]
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i in (0, 5) else "right")
    for name, r in summary.items():
        kinds = ", ".join(f"{k} {n}" for k, n in r["collision_kinds"].items()) or "-"
        table.add_row(
            name,
            str(r["episodes"]),
            format_cell(r.get("route_completion"), "{:.3f}"),
            format_cell(r.get("completed"), "{:.0%}"),
            f"{r['at_fault_collisions']} / {r['collisions']}",
            kinds,
            str(r["timeouts"]),
            str(r["off_road"]),
            f"{format_cell(r.get('mean_speed'), '{:.1f}')} / {format_cell(r.get('expert_mean_speed'), '{:.1f}')}",
            format_cell(r.get("expert_route_completion"), "{:.3f}"),
            format_cell(r.get("mean_pdms"), "{:.3f}"),
            format_cell(r.get("driving_score"), "{:.1f}"),
            f"{format_cell(r.get('planner_ms_p50'), '{:.1f}')} / {format_cell(r.get('planner_ms_p99'), '{:.1f}')}",
            format_cell(r.get("slow_rate"), "{:.1%}"),
        )
    Console(width=max(170, Console().width)).print(table)
