"""``wamdiff eval``: open-loop evaluation of a checkpoint (per reasoning mode) and of reference planners
over bags, one JSON with every run and a table on the terminal.

The runs are :mod:`wamdiff_ros.evaluation.runs`'s, all on the same frames: ``--model DIR --mode
fast,slow,adaptive`` evaluates the model once per mode (a family with a fast/slow gate, forced or
adaptive; the label is ``<family>/<mode>``), or once as ``<family>`` for a family with one path;
``--baseline`` adds reference planners (constant velocity, NAVSIM's constant velocity, the logged expert).

Frames are evaluated one task per run and episode (:mod:`wamdiff_ros.evaluation.tasks`) on the Ray
fan-out (:mod:`wamdiff_ros.distributed.fanout`: ``--workers``, ``--address``; the default ``--workers 1``
runs in this process); the JSON is the same on any number of workers but for the timing fields. Rows
are aggregated as the tasks finish and not kept, so memory stays flat with the number of frames;
``--frames`` streams them to a JSON Lines file (under a temporary name, renamed when the evaluation
completes).

Printed (:mod:`wamdiff_ros.evaluation.tables`): PDMS / EPDMS with NAVSIM sub-metrics, L2 at 1/2/3 s,
ADE / FDE, collision rates, latency, fast / slow rates overall and per scenario, MoE load per layer
(CV², 0 = balanced) and router entropy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from wamdiff_ros.data.remap import add_remap_argument, parse_remaps
from wamdiff_ros.distributed import fanout
from wamdiff_ros.evaluation.runs import BASELINES
from wamdiff_ros.training.settings import passive_omp

GATE_COLUMNS = ("index", "PDMS", "p_complex", "fast_confidence")
"""What ``--calibrate-gate`` keeps of each fast / slow row (the rows themselves are not kept)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint folder (absolute, or under models/)")
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="bags to evaluate on (one dataset)")
    parser.add_argument("--json", required=True, metavar="OUT", help="write every run's results here")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument(
        "--mode", default="adaptive", help="reasoning mode(s) of the model, comma-separated: fast,slow,adaptive"
    )
    parser.add_argument(
        "--baseline", nargs="*", default=[], choices=BASELINES, help="also evaluate these reference planners"
    )
    parser.add_argument("--budget-ms", type=float, default=None, help="latency budget given to the planner")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads per process (default 2; 1 on each Ray worker)"
    )
    parser.add_argument(
        "--frames",
        metavar="OUT.jsonl",
        help="also write every per-frame row here, one JSON object per line with its run's label as 'run'",
    )
    parser.add_argument(
        "--calibrate-gate",
        type=float,
        metavar="MAX_SLOW_RATE",
        help="with --mode fast,slow: fit the gate's theta / c_min for the best adaptive PDMS at a slow rate "
        "<= MAX_SLOW_RATE (fit on validation data, report on test data)",
    )
    parser.add_argument("--no-cache", action="store_true", help="decode images on every access (no dataset cache)")
    add_remap_argument(parser)
    fanout.add_arguments(parser, default=1)


def main(args: argparse.Namespace) -> int:
    passive_omp()
    import torch

    from wamdiff_ros.atomic import atomic_path, atomic_write_json
    from wamdiff_ros.evaluation.runs import parse_modes
    from wamdiff_ros.evaluation.tables import print_report
    from wamdiff_ros.evaluation.tasks import EvalSource, evaluate_runs, open_runs
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.paths import resolve
    from wamdiff_ros.training.gate_calibration import calibrate_gate
    from wamdiff_ros.training.supervised import data_summary

    if args.model is None and not args.baseline:
        print("wamdiff eval: give --model DIR and/or --baseline constant_velocity expert", file=sys.stderr)
        return 2
    try:
        workers = fanout.workers_from_args(args)
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads: expected >= 1, got {args.threads}")
        threads = args.threads or (2 if workers.in_process else 1)
        modes = parse_modes(args.mode)
        if args.calibrate_gate is not None and not {"fast", "slow"} <= set(modes):
            raise ValueError("--calibrate-gate needs --mode with both fast and slow")
        model = resolve(args.model, "models") if args.model is not None else None
        source = EvalSource(
            tuple(str(b) for b in args.data), str(model) if model else None, tuple(modes), tuple(args.baseline),
            tuple(sorted(parse_remaps(args.remap).items())), not args.no_cache, threads,
        )  # fmt: skip
        torch.set_num_threads(threads)
        runs = open_runs(source)
        planner, dataset = runs.planner, runs.dataset
        if args.calibrate_gate is not None and (planner is None or not {"fast", "slow"} <= set(planner.modes)):
            raise ValueError("--calibrate-gate needs --model of a family with fast and slow modes")
        gate_runs = (f"{planner.family}/fast", f"{planner.family}/slow") if args.calibrate_gate is not None else ()
        gate_rows: dict[str, list] = {label: [] for label in gate_runs}
        with contextlib.ExitStack() as stack:
            sink = None
            if args.frames:
                sink = stack.enter_context(open(stack.enter_context(atomic_path(args.frames)), "w"))

            def on_rows(label: str, rows: list[dict]) -> None:
                if label in gate_rows:
                    gate_rows[label].extend({k: r[k] for k in GATE_COLUMNS if k in r} for r in rows)
                if sink is not None:
                    sink.writelines(json.dumps({"run": label, **r}) + "\n" for r in rows)

            results = evaluate_runs(runs, args.every, args.max_frames, args.budget_ms, workers, on_rows=on_rows)
        calibration = None
        if args.calibrate_gate is not None:
            calibration = calibrate_gate(gate_rows[gate_runs[0]], gate_rows[gate_runs[1]], args.calibrate_gate)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"wamdiff eval: {e}", file=sys.stderr)
        return 2
    report = {
        "model": str(model) if model else None,
        "data": data_summary(dataset),
        "every": args.every,
        "max_frames": args.max_frames,
        "budget_ms": args.budget_ms,
        "spec": dataset.spec.to_dict(),
        "results": results,
    }
    if planner is not None:
        report["planner"] = planner.describe()
    if calibration is not None:
        report["gate_calibration"] = calibration
    atomic_write_json(Path(args.json), report)
    print_report(results)
    if calibration is not None:
        print(f"gate calibration: {calibration}")
    print(f"wamdiff eval: wrote {args.json}", file=sys.stderr)
    return 0
