"""``wamdiff label``: score a trajectory vocabulary against every frame of a dataset, for training.

The vocabulary is a checkpoint's (``--model``) or, with ``--config``, clustered from the dataset's
futures exactly as training's ``prepare`` clusters it (same k, seed and iterations), so training on the
same data finds these labels. Labels already on disk are reused (a run can be stopped and rerun).
Frames are scored on the Ray fan-out (:mod:`wamdiff_ros.distributed.fanout`: ``--workers``, ``--address``;
``--workers 1`` in this process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wamdiff_ros.data.remap import add_remap_argument
    from wamdiff_ros.distributed import fanout

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="TrajMoE checkpoint folder whose vocabulary is labelled")
    src.add_argument("--config", help="TrajMoE model YAML: cluster the vocabulary from --data first")
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="bags to label (one dataset)")
    parser.add_argument("--labels", metavar="DIR", help="label root (default: labels/ beside the dataset cache)")
    parser.add_argument("--every", type=int, default=1, help="label every N-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--seed", type=int, default=0, help="vocabulary clustering seed (--config)")
    parser.add_argument("--kmeans-iterations", type=int, default=25, help="vocabulary clustering (--config)")
    parser.add_argument(
        "--coverage", nargs="+", default=[], metavar="BAG", help="also report the vocabulary's coverage of these bags"
    )
    parser.add_argument("--json", metavar="OUT", help="write the summary here")
    add_remap_argument(parser)
    fanout.add_arguments(parser)


def _vocabulary(args, dataset):
    from wamdiff_ros.planners.base import load_planner, untrained_planner
    from wamdiff_ros.planners.trajmoe.task import dataset_futures
    from wamdiff_ros.planners.trajmoe.vocabulary import coverage, fit_vocabulary

    if args.model:
        planner = load_planner(args.model)
        if planner.family != "trajmoe":
            raise SystemExit(f"wamdiff label: --model {args.model} is a {planner.family!r} model, not 'trajmoe'")
        vocab = planner.network().vocabulary.double().numpy()
        return vocab, {"vocabulary": f"checkpoint {args.model}"}
    planner = untrained_planner(args.config)
    if planner.family != "trajmoe":
        raise SystemExit(f"wamdiff label: --config {args.config} is a {planner.family!r} model, not 'trajmoe'")
    futures = dataset_futures(dataset)
    fit = fit_vocabulary(futures, planner.cfg.vocab_size, planner.cfg.mirror_futures, args.kmeans_iterations, args.seed)
    return fit.entries, {
        "vocabulary": f"clustered from {len(futures)} futures",
        "coverage": coverage(fit.entries, futures),
    }


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.data.dataset import DrivingDataset
    from wamdiff_ros.data.remap import parse_remaps
    from wamdiff_ros.distributed.fanout import workers_from_args
    from wamdiff_ros.planners.trajmoe.labels import make_labels

    if args.every < 1:
        raise SystemExit("wamdiff label: --every >= 1 required")
    workers = workers_from_args(args)
    dataset = DrivingDataset(args.data, remaps=parse_remaps(args.remap))
    vocab, info = _vocabulary(args, dataset)
    frames = list(range(0, len(dataset), args.every))[: args.max_frames]
    print(f"wamdiff label: {len(frames)} frames × {len(vocab)} entries, {workers.count} worker(s)", file=sys.stderr)
    t0 = time.perf_counter()
    summary = make_labels(dataset, vocab, args.labels, frames, workers=workers, progress=True)
    summary.update(info, seconds=time.perf_counter() - t0, entries=len(vocab), workers=workers.count)
    if args.coverage:
        from wamdiff_ros.planners.trajmoe.task import dataset_futures
        from wamdiff_ros.planners.trajmoe.vocabulary import coverage

        other = DrivingDataset(args.coverage, dataset.spec, remaps=parse_remaps(args.remap))
        summary["coverage_of"] = {"bags": args.coverage, **coverage(vocab, dataset_futures(other))}
    print(json.dumps(summary, indent=2))
    if args.json:
        atomic_write_json(args.json, summary)
    return 0
