"""Supervised training of WAM-Diff on driving bags: ``wamdiff train``.

LLaDA loss on multi-task batches (motion / reasoning / VQA, :mod:`wamdiff_ros.training.batching`)
plus the MoE balance loss and the complexity head's BCE (label: the tick has reasoning text), in one
run. AdamW (weight decay on matrices only), linear warmup then cosine decay; with a time budget the
cosine follows whichever ends first, the steps or the budget, so a budget-limited run still anneals.

Every random draw is fixed by ``(seed, epoch)`` (sample order) or ``(seed, step, position in the
batch)`` (tasks, masks), so a run stopped after k steps and resumed from ``last/`` reproduces the
uninterrupted run exactly.

Under ``torchrun`` (:mod:`wamdiff_ros.distributed.torchrun`) every rank trains a DDP copy on its equal
contiguous shard of each global batch (``--batch-size`` is the global batch and must divide by the
world size), with batch norms over the global batch, so the weights follow the single-process run on
the same global batch; only the MoE balance loss (token-choice routing) is taken per shard, as DDP
does with any batch-level loss. Rank 0 validates and writes every file; a resume may use another
world size.

Output folder::

    <out>/last/      model checkpoint + optimizer.safetensors + trainer_state.json (resume point)
    <out>/best/      model checkpoint with the best validation (open-loop PDMS, else lowest loss)
    <out>/history.json  one record per validation

Validation (each epoch end, and when a budget or step limit stops the run mid-epoch): LLaDA loss on a
fixed subset with fixed masks, and open-loop PDMS / EPDMS / ADE of the fast path on evenly spaced
validation frames (:func:`wamdiff_ros.evaluation.evaluate_open_loop`).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from wamdiff_ros.atomic import atomic_write_json
from wamdiff_ros.training.settings import passive_omp

BEST, LAST, HISTORY = "best", "last", "history.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="training bags (rosbag2 dirs / .mcap)")
    parser.add_argument(
        "--config",
        help="model config (config/models/*.yaml; default models/wamdiff_small.yaml); with --init: the config the "
        "init weights are loaded into (same tensor shapes), e.g. to change what the trajectory tokens encode",
    )
    parser.add_argument(
        "--train-config", default="training/wamdiff_small.yaml", help="training settings (config/training/*.yaml)"
    )
    parser.add_argument("--out", required=True, help="run folder: last/, best/, history.json")
    parser.add_argument("--val", nargs="+", metavar="BAG", help="validation bags (loss and open-loop PDMS per epoch)")
    parser.add_argument("--epochs", type=int, help="epochs (overrides the training config)")
    parser.add_argument("--max-minutes", type=float, help="training budget in minutes, over all resumes of the run")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in total")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default from the config: 2)")
    parser.add_argument("--val-frames", type=int, help="open-loop PDMS frames per validation (0: loss only)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last/")
    parser.add_argument(
        "--init",
        metavar="MODEL_DIR",
        help="start from this checkpoint's weights and (unless --config is given) its config (fine-tuning)",
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


def make_optimizer(net, settings):
    """AdamW with weight decay on weight matrices and conv kernels only (not norms, biases, embeddings)."""
    import torch

    decay, plain = [], []
    for name, p in net.named_parameters():
        (decay if p.ndim >= 2 and "emb" not in name else plain).append(p)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98))


def train_step(model, optimizer, batch, t, u, grad_clip: float) -> dict[str, float]:
    """One optimiser step (LLaDA + balance + complexity losses, gradient clipping); losses as floats.

    ``model``: :func:`wamdiff_ros.distributed.torchrun.training_module` of the network (DDP in a larger
    world); ``t``, ``u``: the batch's masking draws (:func:`wamdiff_ros.training.batching.mask_draws`).
    """
    import torch

    model.train()
    losses = model(batch, t=t, u=u)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    out = {k: float(v.detach()) for k, v in losses.items()}
    if grad_clip > 0:
        out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    optimizer.step()
    return out


def validate(net, dataset, collator, settings) -> dict:
    """Validation loss on fixed samples with fixed masks, and the fast path's open-loop metrics."""
    import torch

    from wamdiff_ros.evaluation import evaluate_open_loop
    from wamdiff_ros.planners.wamdiff import WamDiffPlanner
    from wamdiff_ros.planners.wamdiff.masked_diffusion import compute_losses

    t0 = time.perf_counter()
    rec: dict = {}
    n = len(dataset)
    net.eval()
    try:
        if settings.val_loss_samples and n:
            idx = np.unique(np.linspace(0, n - 1, min(n, settings.val_loss_samples)).round().astype(int))
            totals: dict[str, float] = {}
            with torch.no_grad():
                for c, start in enumerate(range(0, len(idx), settings.batch_size)):
                    chunk = idx[start : start + settings.batch_size]
                    rng = np.random.default_rng([settings.seed, 2, c])
                    batch, _ = collator([dataset[int(i)] for i in chunk], rng)
                    gen = torch.Generator().manual_seed(settings.seed * 7919 + c)
                    for k, v in compute_losses(net, batch, gen).items():
                        totals[k] = totals.get(k, 0.0) + float(v) * len(chunk)
            rec.update({f"val_{k}": v / len(idx) for k, v in totals.items()})
        if settings.val_frames and n:
            every = max(1, n // settings.val_frames)
            planner = WamDiffPlanner(net, mode="fast", collect_stats=False, seed=settings.seed)
            agg = evaluate_open_loop(planner, dataset, every, max_frames=settings.val_frames)["aggregate"]
            rec.update(
                val_pdms=agg["PDMS"], val_epdms=agg["EPDMS"], val_ade=agg["ade"], val_fde=agg["fde"],
                val_frames=agg["frames"],
            )  # fmt: skip
    finally:
        net.train()
    rec["val_seconds"] = time.perf_counter() - t0
    return rec


def _better(rec: dict, best: dict | None) -> bool:
    """Higher validation PDMS (ties: lower validation loss); without PDMS, lower validation loss, else
    lower training loss."""
    if best is None:
        return True
    for key, sign in (("val_pdms", 1.0), ("val_llada", -1.0), ("train_loss", -1.0)):
        a, b = rec.get(key), best.get(key)
        if a is not None and b is not None and a != b:
            return sign * (a - b) > 0
    return False


class Trainer:
    """Runs (or resumes) one training run into ``out``; see the module docstring.

    Args:
        net: a fresh :class:`WamDiffNet` (ignored weights when resuming: ``last/`` is loaded).
        train_set / val_set: :class:`wamdiff_ros.data.dataset.DrivingDataset` (``scenes=False`` suits).
        settings: :class:`wamdiff_ros.training.settings.TrainSettings`.
        data_info: recorded in the checkpoints' meta (bags, samples, episodes).
        dist: this process's :class:`wamdiff_ros.distributed.torchrun.DistContext` (default: a world of one).
    """

    def __init__(self, net, train_set, out, settings, val_set=None, data_info=None, progress=True, log=None, dist=None):
        from wamdiff_ros.distributed.torchrun import DistContext
        from wamdiff_ros.training.batching import Collator

        if len(train_set) < 1:
            raise ValueError("training data: no samples (every frame lacks a full future horizon or its images)")
        self.dist = dist or DistContext()
        if settings.batch_size % self.dist.world_size:
            raise ValueError(
                f"--batch-size {settings.batch_size}: expected a multiple of the world size {self.dist.world_size}"
            )
        self.net = net
        self.train_set = train_set
        self.val_set = val_set
        self.out = Path(out)
        self.settings = settings
        self.collator = Collator.for_net(net, settings.mix)
        self.data_info = data_info or {}
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if not self.dist.is_main:
            self.log = lambda msg: None
        self.optimizer = make_optimizer(net, settings)
        n, bs = len(train_set), settings.batch_size
        self.steps_per_epoch = max(1, n // bs)
        self.total_steps = settings.epochs * self.steps_per_epoch
        self.state = {
            "step": 0,
            "epoch": 0,
            "step_in_epoch": 0,
            "train_seconds": 0.0,
            "epoch_loss_sum": 0.0,
            "epoch_loss_steps": 0,
            "validated_step": 0,
            "last_val_seconds": 0.0,
            "best": None,
            "history": [],
            "finished": False,
            "stop_reason": "",
        }
        self._stop = False

    # -- state -------------------------------------------------------------------------------------
    def resume(self) -> None:
        """Load ``out/last/`` (weights, optimiser, counters, RNG)."""
        from wamdiff_ros.models.checkpoint import CheckpointError, load_checkpoint, load_state
        from wamdiff_ros.training.checkpointing import load_training_state, recover_dir

        folder = recover_dir(self.out / LAST)
        if folder is None:
            raise CheckpointError(f"--resume: {self.out / LAST} does not exist (nothing to resume)")
        doc, tensors = load_checkpoint(folder)
        if doc["config"].get("text_tokens") and list(self.net.space.text.tokens) != doc["config"]["text_tokens"]:
            raise CheckpointError(f"--resume: {folder} was trained with another vocabulary than this model config")
        load_state(self.net, tensors, str(folder))
        state = load_training_state(folder, self.optimizer)
        self.state.update({k: state[k] for k in self.state if k in state})
        self.state["finished"] = False
        self.state["stop_reason"] = ""

    def _meta(self, record: dict | None = None) -> dict:
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

    def save_last(self) -> None:
        from wamdiff_ros.training.checkpointing import save_training_state

        if not self.dist.is_main:
            return
        save_training_state(self.out / LAST, self.net, self.optimizer, self.state, self._meta())

    def _save_best(self, record: dict) -> None:
        from wamdiff_ros.training.checkpointing import staged_dir

        with staged_dir(self.out / BEST) as tmp:
            self.net.save(tmp, self._meta(record))

    # -- loop --------------------------------------------------------------------------------------
    def _progress(self) -> float:
        s, budget = self.state, self.settings.max_minutes
        p = s["step"] / max(1, self.total_steps)
        if budget:
            p = max(p, s["train_seconds"] / (60.0 * budget))
        return p

    def _out_of_time(self) -> bool:
        budget = self.settings.max_minutes
        return bool(budget) and self.state["train_seconds"] + self.state["last_val_seconds"] >= 60.0 * budget

    def _validate(self, partial: bool) -> dict | None:
        s = self.state
        if not self.dist.is_main:
            s["validated_step"] = s["step"]
            return None
        rec = {
            "epoch": s["epoch"] + (s["step_in_epoch"] / self.steps_per_epoch if partial else 1.0),
            "step": s["step"],
            "partial": partial,
            "train_loss": s["epoch_loss_sum"] / s["epoch_loss_steps"] if s["epoch_loss_steps"] else None,
        }
        if self.val_set is not None and len(self.val_set):
            rec.update(validate(self.net, self.val_set, self.collator, self.settings))
            s["last_val_seconds"] = rec["val_seconds"]
        s["validated_step"] = s["step"]
        improved = _better(rec, s["best"])
        if improved:
            s["best"] = rec
            self._save_best(rec)
        rec["best"] = improved
        s["history"].append(rec)
        atomic_write_json(self.out / HISTORY, s["history"])
        shown = ", ".join(
            f"{k} {rec[k]:.4g}"
            for k in ("train_loss", "val_llada", "val_pdms", "val_epdms", "val_ade")
            if rec.get(k) is not None
        )
        self.log(f"validation at epoch {rec['epoch']:.2f} (step {rec['step']}): {shown}{' *best*' if improved else ''}")
        return rec

    def _request_stop(self, signum, frame) -> None:
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        self.log("stop requested: finishing the current step and saving last/ (again to abort)")

    def run(self, resume: bool = False) -> dict:
        """Train until all epochs, ``max_steps`` or ``max_minutes`` are done; returns a summary."""
        import torch

        from wamdiff_ros.distributed.torchrun import shard, training_module
        from wamdiff_ros.planners.wamdiff.masked_diffusion import compute_losses
        from wamdiff_ros.training.batching import epoch_order, mask_draws, sample_rngs
        from wamdiff_ros.training.settings import learning_rate

        st = self.settings
        torch.set_num_threads(st.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
            self.log(f"resumed at step {self.state['step']} (epoch {self.state['epoch']}) from {self.out / LAST}")
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._request_stop)
        s = self.state
        model = training_module(self.net, compute_losses, self.dist)
        # Stop codes in rising priority; the ranks stop together on the highest any of them sees.
        stops = ("", "interrupted", f"time budget {st.max_minutes or 0:g} min", f"max_steps {st.max_steps}")
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=s["step"], desc="train", unit="step", dynamic_ncols=True)
        t_mark = time.perf_counter()

        def tick() -> None:
            nonlocal t_mark
            now = time.perf_counter()
            s["train_seconds"] += now - t_mark
            t_mark = now

        try:
            while s["epoch"] < st.epochs and not s["stop_reason"]:
                order = epoch_order(len(self.train_set), st.seed, s["epoch"])
                bs = min(st.batch_size, len(order))
                while s["step_in_epoch"] < self.steps_per_epoch:
                    tick()
                    if st.max_steps is not None and s["step"] >= st.max_steps:
                        stop = 3
                    elif self._out_of_time():
                        stop = 2
                    else:
                        stop = int(self._stop)
                    s["stop_reason"] = stops[self.dist.max_int(stop)]
                    if s["stop_reason"]:
                        break
                    j = s["step_in_epoch"]
                    idx = order[j * bs : (j + 1) * bs]
                    mine = shard(range(len(idx)), self.dist)
                    samples = [self.train_set[int(idx[i])] for i in mine]
                    batch, _ = self.collator(samples, sample_rngs(st.seed, s["step"], mine))
                    t, u = mask_draws(st.seed, s["step"], mine, batch.tokens.shape[1])
                    lr = learning_rate(st, s["step"], self._progress())
                    for g in self.optimizer.param_groups:
                        g["lr"] = lr
                    losses = self.dist.mean(train_step(model, self.optimizer, batch, t, u, st.grad_clip))
                    if not math.isfinite(losses["total"]):
                        raise FloatingPointError(f"training diverged at step {s['step']}: losses {losses}")
                    s["step"] += 1
                    s["step_in_epoch"] += 1
                    s["epoch_loss_sum"] += losses["llada"]
                    s["epoch_loss_steps"] += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            ep=s["epoch"],
                            loss=f"{losses['llada']:.3f}",
                            cx=f"{losses['complexity']:.3f}",
                            lr=f"{lr:.1e}",
                        )
                    if s["step"] % st.save_every_steps == 0:
                        tick()
                        self.save_last()
                tick()
                if s["stop_reason"]:
                    break
                self._validate(partial=False)
                s["epoch"] += 1
                s["step_in_epoch"] = 0
                s["epoch_loss_sum"], s["epoch_loss_steps"] = 0.0, 0
                tick()
                self.save_last()
            if s["stop_reason"] and s["stop_reason"] != "interrupted" and s["step"] > s["validated_step"]:
                self._validate(partial=True)
            s["finished"] = s["epoch"] >= st.epochs or (st.max_steps is not None and s["step"] >= st.max_steps)
            tick()
            self.save_last()
            self.dist.barrier()
        finally:
            if bar is not None:
                bar.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        summary = {
            "out": str(self.out),
            "steps": s["step"],
            "epochs": s["epoch"] + s["step_in_epoch"] / self.steps_per_epoch,
            "train_seconds": s["train_seconds"],
            "stop_reason": s["stop_reason"] or "completed",
            "best": s["best"],
        }
        return summary


def main(args: argparse.Namespace) -> int:
    """``wamdiff train``: one process, or one DDP rank of a run started by ``torchrun``."""
    from wamdiff_ros.distributed.torchrun import process_group

    try:
        with process_group() as ctx:
            return _train(args, ctx)
    except ValueError as e:
        print(f"wamdiff train: {e}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace, ctx) -> int:
    passive_omp()
    import torch

    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.data.dataset import DrivingDataset, default_cache_dir
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.planners.wamdiff.config import ModelConfig
    from wamdiff_ros.planners.wamdiff.net import WamDiffNet
    from wamdiff_ros.training.settings import TrainSettings

    try:
        settings = TrainSettings.from_yaml(args.train_config).replace(
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
        if args.resume:
            from wamdiff_ros.models.checkpoint import read_config
            from wamdiff_ros.training.checkpointing import recover_dir

            last = recover_dir(Path(args.out) / LAST)
            if last is None:
                raise CheckpointError(f"--resume: {Path(args.out) / LAST} does not exist (nothing to resume)")
            cfg = ModelConfig.from_dict(read_config(last)["config"], f"{last}/config.json")
        elif not args.init or args.config:
            cfg = ModelConfig.from_yaml(args.config or "models/wamdiff_small.yaml")
        if args.init and not args.resume:
            net = WamDiffNet.load(args.init)  # its weights and config; the trainer switches to train mode
            if args.config:
                from wamdiff_ros.models.checkpoint import load_state

                fresh = WamDiffNet(cfg)
                load_state(fresh, net.state_dict(), f"{args.init} (--init) into {args.config} (--config)")
                net = fresh
            cfg = net.cfg
        else:
            with torch.random.fork_rng():
                torch.manual_seed(settings.seed)
                net = WamDiffNet(cfg)
        cache = None if args.no_cache else default_cache_dir()

        def dataset(bags):
            return DrivingDataset(
                bags, spec=cfg.spec, history=cfg.encoder.history, cache_dir=cache, rig=cfg.rig_obj, scenes=False
            )

        train_set = dataset(args.data)
        val_set = dataset(args.val) if args.val else None
        info = {"train": data_summary(train_set)}
        if args.init:
            info["init"] = str(args.init)
        if val_set is not None:
            info["val"] = data_summary(val_set)
        if ctx.is_main:
            print(
                f"wamdiff train: {net.num_parameters / 1e6:.2f} M parameters; {info['train']['samples']} samples "
                f"from {info['train']['episodes']} episodes"
                + (f"; validation {info['val']['samples']} samples" if val_set is not None else "")
                + (f"; DDP over {ctx.world_size} ranks ({ctx.backend})" if ctx.distributed else ""),
                file=sys.stderr,
            )
        trainer = Trainer(net, train_set, args.out, settings, val_set, info, not args.no_progress, dist=ctx)
        summary = trainer.run(resume=args.resume)
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as e:
        print(f"wamdiff train: {e}", file=sys.stderr)
        return 2
    code = 130 if summary["stop_reason"] == "interrupted" else 0
    if not ctx.is_main:
        return code
    best = summary["best"] or {}
    shown = ", ".join(
        f"{k} {best[k]:.4g}" for k in ("val_pdms", "val_epdms", "val_llada", "train_loss") if best.get(k) is not None
    )
    print(
        f"wamdiff train: {summary['steps']} steps ({summary['epochs']:.2f} epochs) in "
        f"{summary['train_seconds'] / 60:.1f} min, stopped by {summary['stop_reason']}; best: {shown}; "
        f"wrote {args.out}/last" + (f", {args.out}/best" if summary["best"] else ""),
        file=sys.stderr,
    )
    return code


__all__ = ["Trainer", "data_summary", "make_optimizer", "train_step", "validate"]
