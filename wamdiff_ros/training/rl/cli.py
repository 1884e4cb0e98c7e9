"""``wamdiff rl``: RL fine-tuning (GSPO / GRPO) of a checkpoint on replayed bags, with a progress bar,
resume, and a report (curves, before/after table on held-out bags).

Scale-out: ``--workers N`` / ``--address HOST:PORT`` score the rewards of large steps on Ray workers
(:mod:`wamdiff_ros.distributed.fanout`; a local Ray is kept up for the whole run), and started by
``torchrun`` every process is one DDP rank (:mod:`wamdiff_ros.distributed.torchrun`; rank 0 validates,
writes ``--out`` and the report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wamdiff_ros.distributed import fanout
from wamdiff_ros.training.settings import passive_omp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="starting checkpoint folder (absolute, or under models/)")
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="bags whose scenes are replayed")
    parser.add_argument("--out", required=True, help="run folder: last/, best/, history.json, report/")
    parser.add_argument("--val", nargs="+", metavar="BAG", help="validation bags (open-loop PDMS; picks best/)")
    parser.add_argument("--test", nargs="+", metavar="BAG", help="held-out bags for the before/after report table")
    parser.add_argument("--test-every", type=int, default=5, help="evaluate every N-th test frame (default 5)")
    parser.add_argument(
        "--test-modes", default="fast,adaptive", help="reasoning modes compared on --test (comma-separated)"
    )
    parser.add_argument(
        "--config", help="RL settings (config/training/; default: the model family's training/rl_<family>_small.yaml)"
    )
    parser.add_argument("--algorithm", choices=("gspo", "grpo"))
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--scenes-per-step", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--kl-beta", type=float)
    parser.add_argument("--max-minutes", type=float, help="training budget over all resumes")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--val-frames", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last/")
    parser.add_argument("--no-cache", action="store_true", help="decode images on every access")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    fanout.add_arguments(parser, default=1)


def main(args: argparse.Namespace) -> int:
    """``wamdiff rl``: one process, or one DDP rank of a run started by ``torchrun``."""
    from wamdiff_ros.distributed.torchrun import process_group

    try:
        with process_group() as ctx:
            return _rl(args, ctx)
    except ValueError as e:
        print(f"wamdiff rl: {e}", file=sys.stderr)
        return 2


def _rl(args: argparse.Namespace, ctx) -> int:
    passive_omp()
    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.paths import resolve
    from wamdiff_ros.planners.base import checkpoint_family
    from wamdiff_ros.training.rl.report import compare_models, write_report
    from wamdiff_ros.training.rl.session import build_trainer
    from wamdiff_ros.training.rl.settings import RLSettings, default_settings_file
    from wamdiff_ros.training.rl.trainer import BEST

    if args.test_every < 1:
        print(f"wamdiff rl: --test-every: expected >= 1, got {args.test_every}", file=sys.stderr)
        return 2
    bad = [m for m in args.test_modes.split(",") if m.strip() not in ("fast", "slow", "adaptive")]
    if bad:
        print(
            f"wamdiff rl: --test-modes: expected fast, slow and/or adaptive, got {args.test_modes!r}", file=sys.stderr
        )
        return 2
    try:
        model = resolve(args.model, "models")
        settings = RLSettings.from_yaml(args.config or default_settings_file(checkpoint_family(model))).replace(
            algorithm=args.algorithm,
            group_size=args.group_size,
            scenes_per_step=args.scenes_per_step,
            lr=args.lr,
            kl_beta=args.kl_beta,
            max_minutes=args.max_minutes,
            max_steps=args.max_steps,
            val_frames=args.val_frames,
            seed=args.seed,
            threads=args.threads,
        )
        workers = fanout.workers_from_args(args)
        if ctx.distributed and not workers.in_process and not workers.address:
            raise ValueError("--workers under torchrun: every rank would start its own Ray; join one with --address")
        if settings.scenes_per_step // ctx.world_size * settings.group_size < settings.fanout_min_rollouts:
            workers = fanout.Workers(1)
        trainer = build_trainer(
            model, args.data, args.out, settings, args.val if ctx.is_main else None, resume=args.resume,
            cache=not args.no_cache,
            progress=not args.no_progress, workers=workers, dist=ctx,
        )  # fmt: skip
        info = trainer.data_info["train"]
        if ctx.is_main:
            print(
                f"wamdiff rl: {settings.algorithm.upper()} on {len(trainer.scenes)} scenes ({info['samples']} "
                f"samples, {info['episodes']} episodes), G={settings.group_size}, {settings.scenes_per_step} "
                f"scenes/step"
                + (f", DDP over {ctx.world_size} ranks ({ctx.backend})" if ctx.distributed else "")
                + ("" if workers.in_process else f", rewards on {workers.address or f'{workers.count} Ray workers'}"),
                file=sys.stderr,
            )
        with fanout.session(workers):
            summary = trainer.run(resume=args.resume)
        if not ctx.is_main:
            return 130 if summary["stop_reason"] == "interrupted" else 0
        compare = None
        if args.test and summary["stop_reason"] != "interrupted":
            tuned = Path(args.out) / BEST
            models = {"start": str(model)}
            if tuned.is_dir():
                models["rl"] = str(tuned)
            modes = tuple(m.strip() for m in args.test_modes.split(",") if m.strip())
            compare = compare_models(models, args.test, args.test_every, modes, threads=settings.threads)
        folder = write_report(
            args.out, compare, f"{', '.join(args.test)}, every {args.test_every}th frame" if args.test else ""
        )
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as e:
        print(f"wamdiff rl: {e}", file=sys.stderr)
        return 2
    start, best = summary["initial"] or {}, summary["best"]
    line = f"wamdiff rl: {summary['steps']} steps in {summary['train_seconds'] / 60:.1f} min, {summary['stop_reason']}"
    if "PDMS" in start:
        line += f"; validation PDMS {start['PDMS']:.4f} at start"
        line += f", best {best['PDMS']:.4f} (step {best['step']})" if best else ", not improved (no best/)"
    print(f"{line}; report {folder}", file=sys.stderr)
    return 130 if summary["stop_reason"] == "interrupted" else 0


__all__ = ["add_arguments", "main"]
