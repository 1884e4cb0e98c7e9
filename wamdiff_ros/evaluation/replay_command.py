"""``wamdiff replay BAG --model DIR --out DIR``: open-loop evaluation of a planner over a bag.

No middleware: frames come from :class:`wamdiff_ros.data.dataset.DrivingDataset` (images, ego state and
history, command, instruction; the logged future and the scoring scene), the planner plans each N-th
one, and :func:`wamdiff_ros.evaluation.open_loop.evaluate_open_loop` scores it. Writes, atomically, into ``--out``:

- ``metrics.json``: per-frame and aggregate PDMS / EPDMS with sub-metrics, L2 / ADE / FDE, collision
  rates, latency p50 / p99, fast / slow rate, MoE statistics when the planner has them;
- ``summary.md``: the same at a glance;
- ``bev/frame_XXXXX.png``: bird's-eye views (plan vs log vs candidates, lanes, agent boxes) of every
  ``--plot-every``-th evaluated frame; ``metrics.png``: metric curves over bag time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wamdiff_ros.data.remap import add_remap_argument, parse_remaps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", nargs="+", help="rosbag2 directory or .mcap file (several: one dataset)")
    parser.add_argument("--model", required=True, help="checkpoint folder (absolute, or under models/)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th frame (default 1)")
    parser.add_argument("--plot-every", type=int, default=10, help="BEV plot of every N-th evaluated frame (0: none)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--budget-ms", type=float, default=None, help="latency budget given to the planner")
    parser.add_argument("--mode", choices=("adaptive", "fast", "slow"), default=None, help="reasoning mode (fast/slow)")
    parser.add_argument("--no-cache", action="store_true", help="decode images on every access (no dataset cache)")
    add_remap_argument(parser)


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.atomic import atomic_write_json, atomic_write_text
    from wamdiff_ros.evaluation.open_loop import evaluate_open_loop
    from wamdiff_ros.evaluation.runs import planner_dataset
    from wamdiff_ros.paths import resolve
    from wamdiff_ros.planners.base import load_planner
    from wamdiff_ros.reporting.plots import plot_bev, plot_metric_curves
    from wamdiff_ros.reporting.summary import replay_summary

    if args.plot_every < 0:
        print(f"wamdiff replay: --plot-every: expected >= 0, got {args.plot_every}", file=sys.stderr)
        return 2
    try:
        remaps = parse_remaps(args.remap)
        model = resolve(args.model, "models")
        planner = load_planner(model)
        if args.mode is not None:
            planner.set_mode(args.mode)
        dataset = planner_dataset(args.bag, planner, cache=not args.no_cache, remaps=remaps)
    except (ValueError, FileNotFoundError) as e:
        print(f"wamdiff replay: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    plots: list[str] = []
    evaluated = [0]

    def on_frame(rec) -> None:
        n = evaluated[0]
        evaluated[0] += 1
        if args.plot_every and n % args.plot_every == 0:
            name = f"bev/frame_{rec.index:05d}.png"
            title = (
                f"frame {rec.index} t={rec.row['stamp']:.1f} s {rec.scene.scenario} ({rec.result.mode})\n"
                f"PDMS {rec.row['PDMS']:.2f}  EPDMS {rec.row['EPDMS']:.2f}  ADE {rec.row['ade']:.2f} m"
            )
            plot_bev(out / name, rec.scene, rec.result.trajectory.poses, rec.result.candidates, title)
            plots.append(name)

    try:
        result = evaluate_open_loop(
            planner,
            dataset,
            args.every,
            budget_ms=args.budget_ms,
            max_frames=args.max_frames,
            on_frame=on_frame,
            progress=True,
        )
    except ValueError as e:
        print(f"wamdiff replay: {e}", file=sys.stderr)
        return 2
    plot_metric_curves(out / "metrics.png", result["frames"])
    plots.insert(0, "metrics.png")
    report = {
        "bags": [str(b) for b in args.bag],
        "model": str(model),
        "family": planner.family,
        "spec": planner.spec.to_dict(),
        "samples": len(dataset),
        "plots": plots,
        **result,
    }
    atomic_write_json(out / "metrics.json", report)
    atomic_write_text(out / "summary.md", replay_summary(report))
    agg = result["aggregate"]
    print(
        f"wamdiff replay: {agg['frames']} frames: PDMS {agg['PDMS']:.3f}, EPDMS {agg['EPDMS']:.3f}, "
        f"ADE {agg['ade']:.2f} m, latency p50 {agg['latency_ms']['p50']:.1f} ms; wrote {out}/metrics.json, summary.md",
        file=sys.stderr,
    )
    return 0
