"""``wamdiff compare``: checkpoints (any families) and baselines side by side in one table (:mod:`.compare`):
open-loop PDMS / EPDMS on bags (``--data``, the test split by default), closed-loop figures on the same
fresh episodes for every one of them (``wamdiff closedloop``'s options), latency, parameters and size.
``--json`` keeps every figure, ``--markdown`` the table for the README and the model cards."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from wamdiff_ros.evaluation.closed_loop_command import add_closed_loop_arguments
from wamdiff_ros.evaluation.compare import BASELINES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint folders (absolute, or under models/)")
    parser.add_argument("--baselines", nargs="*", default=[], choices=BASELINES, help="also compare these baselines")
    parser.add_argument("--json", required=True, metavar="OUT", help="write every figure here")
    parser.add_argument("--markdown", metavar="OUT.md", help="also write the table as Markdown")
    parser.add_argument(
        "--data", nargs="+", default=["data/test"], metavar="BAG", help="bags of the open-loop scores (data/test)"
    )
    parser.add_argument("--every", type=int, default=5, help="open loop: score every N-th frame (default 5)")
    parser.add_argument("--max-frames", type=int, default=None, help="open loop: stop after this many frames")
    add_closed_loop_arguments(parser)


def unique_labels(folders: list[Path]) -> list[str]:
    """The folders' names, with ``-2``, ``-3`` … appended to repeats."""
    seen: dict[str, int] = {}
    labels = []
    for folder in folders:
        n = seen[folder.name] = seen.get(folder.name, 0) + 1
        labels.append(folder.name if n == 1 else f"{folder.name}-{n}")
    return labels


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.training.settings import passive_omp

    passive_omp()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from wamdiff_ros.atomic import atomic_write_json, atomic_write_text
    from wamdiff_ros.distributed import fanout
    from wamdiff_ros.evaluation.closed_loop import (
        DriverSpec,
        build_planner,
        episodes,
        node_params,
        run_drivers,
        run_info,
        summarize_drives,
    )
    from wamdiff_ros.evaluation.closed_loop_command import check_common, model_driver, node_overrides
    from wamdiff_ros.evaluation.compare import (
        checkpoint_size_mb,
        closed_loop_row,
        markdown_table,
        open_loop_scores,
        parameter_count,
        print_table,
    )
    from wamdiff_ros.planning.model import resolve_model
    from wamdiff_ros.runtime.base import BackendUnavailable
    from wamdiff_ros.sim.scenarios import load_scenarios

    t_start = time.perf_counter()
    try:
        check_common(args)
        if args.every < 1:
            raise ValueError(f"--every: expected >= 1, got {args.every}")
        missing = [d for d in args.data if not Path(d).exists()]
        if missing:
            raise ValueError(f"--data: {', '.join(missing)} not found (record it with `wamdiff collect --split test`)")
        folders = [resolve_model(m) for m in args.models]
        labels = unique_labels(folders)
        specs = [model_driver(str(f), args, label) for f, label in zip(folders, labels)]
        for spec in specs:
            build_planner(spec)  # checked (and its graphs exported) before any worker starts
        episode_list = episodes(load_scenarios(args.scenarios), args.episodes, args.max_duration, args.split)
        workers = fanout.workers_from_args(args)
        mode = specs[0].params["reasoning_mode"]
        scores, planners = open_loop_scores(
            dict(zip(labels, folders)), args.baselines, args.data, args.every, mode, args.max_frames
        )
    except (ValueError, FileNotFoundError, BackendUnavailable) as e:
        print(f"wamdiff compare: {e}", file=sys.stderr)
        return 2
    expert = DriverSpec("expert", "expert")
    drivers = [expert, *specs]
    if "constant_velocity" in args.baselines:
        params = node_params(**node_overrides(args))
        drivers.append(DriverSpec("constant_velocity", "constant_velocity", params, args.budget_ms, args.image_format))
    drives = run_drivers(drivers, episode_list, workers, score_every=args.score_every, desc="compare")
    summaries = {
        d.label: summarize_drives(drives[d.label], None if d is expert else drives[expert.label]) for d in drivers
    }
    rows = []
    for label, folder in zip(labels, folders):
        planner = planners[label]
        rows.append(
            {
                "label": label,
                "family": planner.family,
                "open_loop_pdms": scores[label]["PDMS"],
                "open_loop_epdms": scores[label]["EPDMS"],
                **closed_loop_row(summaries[label]["all"]),
                "parameters_m": parameter_count(planner) / 1e6,
                "size_mb": checkpoint_size_mb(folder),
            }
        )
    for name in args.baselines:
        label = "constant_velocity" if name == "constant_velocity" else expert.label
        row = {"label": name, "family": name, **closed_loop_row(summaries[label]["all"])}
        row.update(open_loop_pdms=scores[name]["PDMS"], open_loop_epdms=scores[name]["EPDMS"])
        if name == "expert":
            row["latency_p50_ms"] = None  # the expert plans on ground truth, not on the cameras
        rows.append(row)
    report = {
        "models": [str(f) for f in folders],
        "baselines": list(args.baselines),
        "open_loop": {"data": list(args.data), "every": args.every, "mode": mode, "scores": scores},
        "closed_loop": {
            "split": args.split,
            "episodes": args.episodes,
            "scenarios": list(args.scenarios),
            "max_duration_s": args.max_duration,
            "budget_ms": args.budget_ms,
            "summaries": summaries,
        },
        "rows": rows,
        "run": run_info(workers, time.perf_counter() - t_start),
    }
    atomic_write_json(args.json, report)
    if args.markdown:
        atomic_write_text(args.markdown, markdown_table(rows))
    closed = f"closed loop on {args.episodes} {args.split} episodes"
    title = f"open loop on {', '.join(args.data)} (every {args.every}); {closed}"
    print_table(rows, title)
    print(f"wamdiff compare: wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""), file=sys.stderr)
    return 0
