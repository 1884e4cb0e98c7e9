"""Supervised training of any planner family on driving bags: ``wamdiff train``.

The family declares its objective (:meth:`~wamdiff_ros.planners.base.Planner.supervised_task`, a
:class:`~wamdiff_ros.training.task.SupervisedTask`); everything else is shared: the loop
(:class:`~wamdiff_ros.training.loop.TrainingLoop`), AdamW (weight decay on matrices only), linear warmup
then cosine decay (with a time budget the cosine follows whichever ends first, the steps or the
budget, so a budget-limited run still anneals), validation and checkpoints.

Every random draw is fixed by ``(seed, epoch)`` (sample order) or ``(seed, step, position in the
global batch)`` (each sample's generator for :meth:`SupervisedTask.collate`), so a run stopped after k
steps and resumed from ``last/`` reproduces the uninterrupted run exactly.

Under ``torchrun`` (:mod:`wamdiff_ros.distributed.torchrun`) every rank trains a DDP copy on its equal
contiguous shard of each global batch (``batch_size`` is the global batch and must divide by the world
size), with batch norms over the global batch, so the weights follow the single-process run on the
same global batch; a loss over the batch as a whole (such as an MoE balance loss) is taken per shard,
as DDP does with any batch-level loss. Rank 0 validates and writes every file; a resume may use
another world size.

Output folder::

    <out>/last/      model checkpoint + optimizer.safetensors + trainer_state.json (resume point)
    <out>/best/      model checkpoint with the best validation (open-loop PDMS, else lowest loss)
    <out>/history.json  one record per validation

Validation (each epoch end, every ``val_every_steps`` steps when set, and when a budget or step limit
stops the run mid-epoch): the task's loss on a fixed subset with fixed draws, and open-loop PDMS /
EPDMS / ADE of ``task.planner`` on evenly spaced validation frames
(:func:`wamdiff_ros.evaluation.evaluate_open_loop`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from wamdiff_ros.training.loop import LAST, TrainingLoop, epoch_order
from wamdiff_ros.training.settings import passive_omp

VAL_STREAM = 3
"""Seed stream of the validation batches' generators (never a training step's)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="training bags (rosbag2 dirs / .mcap)")
    parser.add_argument(
        "--config",
        help="training config (config/training/*.yaml): shared settings, the model config to build (model:) "
        "and the family's settings (family:); optional with --init (defaults) or --resume (the run's own)",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL_YAML",
        help="model config (overrides the training config's model:); with --init: the config the init weights "
        "are loaded into (same tensor shapes)",
    )
    parser.add_argument("--out", required=True, help="run folder: last/, best/, history.json")
    parser.add_argument("--val", nargs="+", metavar="BAG", help="validation bags (loss and open-loop PDMS)")
    parser.add_argument("--epochs", type=int, help="epochs (overrides the training config)")
    parser.add_argument("--max-minutes", type=float, help="training budget in minutes, over all resumes of the run")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in total")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default from the config)")
    parser.add_argument("--val-frames", type=int, help="open-loop PDMS frames per validation (0: loss only)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last/")
    parser.add_argument(
        "--init",
        metavar="MODEL_DIR",
        help="fine-tune: start from this checkpoint's weights and, unless --model is given, its config with "
        "its fitted parts (anchors, codebook, vocabulary; not refitted)",
    )
    parser.add_argument("--no-cache", action="store_true", help="decode images on every access (no dataset cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def data_summary(dataset) -> dict:
    """Bags, samples, episodes and samples per scenario of a :class:`DrivingDataset`."""
    episodes = set()
    scenarios: Counter = Counter()
    for b, k in dataset.index:
        f = dataset.bags[b].log.frames[k]
        episodes.add((b, f.episode))
        scenarios[f.scenario] += 1
    return {
        "bags": [str(bag.path) for bag in dataset.bags],
        "samples": len(dataset),
        "episodes": len(episodes),
        "scenarios": dict(sorted(scenarios.items())),
    }


def make_optimizer(params, names: dict, settings):
    """AdamW over ``params`` with weight decay on weight matrices and conv kernels only (not norms, biases,
    embeddings); ``names``: ``id(parameter) -> name`` (an embedding's name contains ``emb``)."""
    import torch

    decay, plain = [], []
    for p in params:
        (decay if p.ndim >= 2 and "emb" not in names.get(id(p), "") else plain).append(p)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98))


def _better(rec: dict, best: dict | None) -> bool:
    """Higher validation PDMS (ties: lower validation loss); without PDMS, lower validation loss, else
    lower training loss."""
    if best is None:
        return True
    for key, sign in (("val_pdms", 1.0), ("val_loss", -1.0), ("train_loss", -1.0)):
        a, b = rec.get(key), best.get(key)
        if a is not None and b is not None and a != b:
            return sign * (a - b) > 0
    return False


class Trainer(TrainingLoop):
    """Runs (or resumes) one supervised run of ``task`` into ``out``; see the module docstring.

    Args:
        task: the family's :class:`~wamdiff_ros.training.task.SupervisedTask` (its planner's weights are
            replaced by ``last/`` when resuming).
        train_set / val_set: :class:`wamdiff_ros.data.dataset.DrivingDataset` built for ``task.data_needs()``.
        settings: :class:`wamdiff_ros.training.settings.TrainSettings`.
        data_info: recorded in the checkpoints' meta (bags, samples, episodes).
        dist: this process's :class:`wamdiff_ros.distributed.torchrun.DistContext` (default: a world of one).
    """

    def __init__(
        self, task, train_set, out, settings, val_set=None, data_info=None, progress=True, log=None, dist=None
    ):
        from wamdiff_ros.distributed.torchrun import DistContext, training_module

        dist = dist or DistContext()
        if len(train_set) < 1:
            raise ValueError("training data: no samples (every frame lacks a full future horizon or its images)")
        if settings.batch_size % dist.world_size:
            raise ValueError(
                f"--batch-size {settings.batch_size}: expected a multiple of the world size {dist.world_size}"
            )
        net = task.planner.network()
        names = {id(p): n for n, p in net.named_parameters()}
        self.params = list(task.trainable_parameters())
        super().__init__(
            out,
            task.planner,
            net,
            make_optimizer(self.params, names, settings),
            settings,
            len(train_set) // settings.batch_size,
            val_every_steps=settings.val_every_steps,
            progress=progress,
            log=log,
            dist=dist,
        )
        self.task = task
        self.train_set = train_set
        self.val_set = val_set
        self.data_info = data_info or {}
        self.state.update(epoch_loss_sum=0.0, epoch_loss_steps=0)
        self.module = training_module(net, lambda _net, batch: task.loss(batch), self.dist)

    def meta(self, record: dict | None = None) -> dict:
        s = self.state
        return {
            "training": {
                "data": self.data_info,
                "step": s["step"],
                "epoch": s["epoch"] + s["step_in_epoch"] / self.steps_per_epoch,
                "train_seconds": round(s["train_seconds"], 1),
                "settings": self.settings.to_dict(),
                "validation": record or {},
            }
        }

    def epoch_items(self, epoch: int) -> np.ndarray:
        return epoch_order(len(self.train_set), self.settings.seed, epoch)

    def train_step(self, order: np.ndarray, j: int) -> dict:
        import torch

        from wamdiff_ros.distributed.torchrun import shard
        from wamdiff_ros.training.settings import learning_rate
        from wamdiff_ros.training.task import sample_rngs

        st, s = self.settings, self.state
        bs = min(st.batch_size, len(order))
        idx = order[j * bs : (j + 1) * bs]
        mine = shard(range(len(idx)), self.dist)
        batch = self.task.collate([self.train_set[int(idx[i])] for i in mine], sample_rngs(st.seed, s["step"], mine))
        lr = learning_rate(st, s["step"], self.progress_fraction())
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.module.train()
        loss, parts = self.module(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        rec = {"loss": float(loss.detach()), **parts}
        if st.grad_clip > 0:
            rec["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, st.grad_clip))
        self.optimizer.step()
        rec = self.dist.mean(rec)
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"training diverged at step {s['step']}: losses {rec}")
        rec["lr"] = lr
        return rec

    def after_step(self, rec: dict) -> None:
        self.state["epoch_loss_sum"] += rec["loss"]
        self.state["epoch_loss_steps"] += 1

    def postfix(self, rec: dict) -> dict:
        return {"ep": self.state["epoch"], "loss": f"{rec['loss']:.3f}", "lr": f"{rec['lr']:.1e}"}

    def on_epoch_end(self) -> None:
        self.state["epoch_loss_sum"], self.state["epoch_loss_steps"] = 0.0, 0

    def check_resume(self, folder: Path, doc: dict, state: dict) -> None:
        import json

        from wamdiff_ros.models.checkpoint import CheckpointError

        mine = json.loads(json.dumps(self.task.planner.checkpoint_config()))
        if doc["config"] != mine:
            raise CheckpointError(f"--resume: {folder} was trained with another model config than this planner's")

    def validate(self, final: bool) -> dict | None:
        s = self.state
        if not self.dist.is_main:
            return None
        rec = {
            "epoch": s["epoch"] + (s["step_in_epoch"] / self.steps_per_epoch if final else 1.0),
            "step": s["step"],
            "partial": final,
            "train_loss": s["epoch_loss_sum"] / s["epoch_loss_steps"] if s["epoch_loss_steps"] else None,
        }
        if self.val_set is not None and len(self.val_set):
            rec.update(self.validation_metrics())
        improved = _better(rec, s["best"])
        if improved:
            s["best"] = rec
            self.save_best(rec)
        rec["best"] = improved
        s["history"].append(rec)
        self.write_history()
        shown = ", ".join(
            f"{k} {rec[k]:.4g}"
            for k in ("train_loss", "val_loss", "val_pdms", "val_epdms", "val_ade")
            if rec.get(k) is not None
        )
        self.log(f"validation at epoch {rec['epoch']:.2f} (step {rec['step']}): {shown}{' *best*' if improved else ''}")
        return rec

    def validation_metrics(self) -> dict:
        """The task's loss on fixed validation samples with fixed draws, and the open-loop metrics of
        ``task.planner``."""
        import torch

        from wamdiff_ros.evaluation import evaluate_open_loop
        from wamdiff_ros.training.task import sample_rngs

        st, dataset = self.settings, self.val_set
        t0 = time.perf_counter()
        rec: dict = {}
        n = len(dataset)
        self.net.eval()
        try:
            if st.val_loss_samples:
                idx = np.unique(np.linspace(0, n - 1, min(n, st.val_loss_samples)).round().astype(int))
                totals: dict[str, float] = {}
                with torch.no_grad():
                    for start in range(0, len(idx), st.batch_size):
                        chunk = idx[start : start + st.batch_size]
                        rngs = sample_rngs(st.seed + VAL_STREAM * 1_000_003, start, range(len(chunk)))
                        loss, parts = self.task.loss(self.task.collate([dataset[int(i)] for i in chunk], rngs))
                        for k, v in {"loss": float(loss), **parts}.items():
                            totals[k] = totals.get(k, 0.0) + float(v) * len(chunk)
                rec.update({f"val_{k}": v / len(idx) for k, v in totals.items()})
            if st.val_frames:
                every = max(1, n // st.val_frames)
                agg = evaluate_open_loop(self.task.planner, dataset, every, max_frames=st.val_frames)["aggregate"]
                rec.update(
                    val_pdms=agg["PDMS"], val_epdms=agg["EPDMS"], val_ade=agg["ade"], val_fde=agg["fde"],
                    val_frames=agg["frames"],
                )  # fmt: skip
        finally:
            self.net.train()
        rec["val_seconds"] = time.perf_counter() - t0
        return rec


def main(args: argparse.Namespace) -> int:
    """``wamdiff train``: one process, or one DDP rank of a run started by ``torchrun``."""
    from wamdiff_ros.distributed.torchrun import process_group

    try:
        with process_group() as ctx:
            return _train(args, ctx)
    except ValueError as e:
        print(f"wamdiff train: {e}", file=sys.stderr)
        return 2


def build_planner(args: argparse.Namespace, settings):
    """The planner a run trains: ``last/``'s (resume), ``--init``'s weights (in ``--model``'s config when
    given), or an untrained one of the model config (weights drawn from the seed)."""
    from wamdiff_ros.models.checkpoint import CheckpointError, load_state
    from wamdiff_ros.models.encoder import widen_stems
    from wamdiff_ros.planners.base import load_planner, untrained_planner
    from wamdiff_ros.training.checkpointing import recover_dir

    model = args.model or settings.model
    if args.resume:
        last = recover_dir(Path(args.out) / LAST)
        if last is None:
            raise CheckpointError(f"--resume: {Path(args.out) / LAST} does not exist (nothing to resume)")
        return load_planner(last)
    if not args.init:
        if not model:
            raise ValueError("expected a model config: --config with a model: key, --model, or --init")
        return untrained_planner(model, seed=settings.seed)
    planner = load_planner(args.init)
    if args.model:
        fresh = untrained_planner(args.model, seed=settings.seed)
        net = fresh.network()
        tensors = widen_stems(planner.network().state_dict(), net)
        load_state(net, tensors, f"{args.init} (--init) into {args.model} (--model)")
        planner = fresh
    return planner


def _base_settings(args: argparse.Namespace):
    """``--config``'s settings; without it, those ``last/`` recorded (``--resume``) or the defaults."""
    from wamdiff_ros.models.checkpoint import read_config
    from wamdiff_ros.training.checkpointing import recover_dir
    from wamdiff_ros.training.settings import TrainSettings

    if args.config:
        return TrainSettings.from_yaml(args.config)
    last = recover_dir(Path(args.out) / LAST) if args.resume else None
    if last is not None:
        recorded = read_config(last).get("meta", {}).get("training", {}).get("settings")
        if recorded is not None:
            return TrainSettings.from_dict(recorded, f"{last}/config.json (meta.training.settings)")
    return TrainSettings()


def _train(args: argparse.Namespace, ctx) -> int:
    passive_omp()
    import torch

    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.data.dataset import DrivingDataset, default_cache_dir
    from wamdiff_ros.models.checkpoint import CheckpointError

    try:
        if not (args.config or args.init or args.resume):
            raise ValueError("expected --config TRAINING_YAML (or --init MODEL_DIR, or --resume)")
        settings = _base_settings(args).replace(
            epochs=args.epochs,
            max_minutes=args.max_minutes,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            threads=args.threads,
            val_frames=args.val_frames,
        )
        torch.set_num_threads(settings.threads)
        planner = build_planner(args, settings)
        task = planner.supervised_task(**settings.family)
        if task is None:
            raise ValueError(f"the {planner.family!r} family has nothing to train (no supervised task)")
        needs = task.data_needs()
        cache = None if args.no_cache else default_cache_dir()

        def dataset(bags):
            return DrivingDataset(
                bags, spec=needs.spec, history=needs.history, cache_dir=cache, rig=needs.rig, scenes=needs.scenes,
                past_frame_s=needs.past_frame_s, **needs.extras,
            )  # fmt: skip

        train_set = dataset(args.data)
        val_set = dataset(args.val) if args.val else None
        info = {"train": data_summary(train_set)}
        if args.init:
            info["init"] = str(args.init)
        if val_set is not None:
            info["val"] = data_summary(val_set)
        if not args.resume and not (args.init and not args.model):  # the config is fresh: fit its parts
            report = task.prepare(train_set)
            if report and ctx.is_main:
                print(f"wamdiff train: prepared {report}", file=sys.stderr)
        if ctx.is_main:
            n = sum(p.numel() for p in task.trainable_parameters())
            print(
                f"wamdiff train: {planner.family}, {n / 1e6:.2f} M trainable parameters; "
                f"{info['train']['samples']} samples from {info['train']['episodes']} episodes"
                + (f"; validation {info['val']['samples']} samples" if val_set is not None else "")
                + (f"; DDP over {ctx.world_size} ranks ({ctx.backend})" if ctx.distributed else ""),
                file=sys.stderr,
            )
        trainer = Trainer(task, train_set, args.out, settings, val_set, info, not args.no_progress, dist=ctx)
        summary = trainer.run(resume=args.resume)
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as e:
        print(f"wamdiff train: {e}", file=sys.stderr)
        return 2
    code = 130 if summary["stop_reason"] == "interrupted" else 0
    if not ctx.is_main:
        return code
    best = summary["best"] or {}
    shown = ", ".join(
        f"{k} {best[k]:.4g}" for k in ("val_pdms", "val_epdms", "val_loss", "train_loss") if best.get(k) is not None
    )
    print(
        f"wamdiff train: {summary['steps']} steps ({summary['epochs']:.2f} epochs) in "
        f"{summary['train_seconds'] / 60:.1f} min, stopped by {summary['stop_reason']}; best: {shown}; "
        f"wrote {args.out}/last" + (f", {args.out}/best" if summary["best"] else ""),
        file=sys.stderr,
    )
    return code


__all__ = ["Trainer", "build_planner", "data_summary", "make_optimizer"]
