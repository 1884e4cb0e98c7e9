"""The training loop shared by the supervised and the RL trainer: counters, seeded order, progress bar,
stop rules, validation cadence, ``best/`` and ``last/`` folders, resume and Ctrl-C.

A trainer subclasses :class:`TrainingLoop` and supplies what one optimiser step does
(:meth:`TrainingLoop.train_step`), how the run validates (:meth:`TrainingLoop.validate`) and what its
checkpoints record (:meth:`TrainingLoop.meta`); everything else is here, the same for both:

- epochs of ``steps_per_epoch`` steps over an order fixed by ``(seed, epoch)``, so a resumed run replays
  it without stored state;
- the run stops at ``epochs``, ``max_steps``, the ``max_minutes`` budget (over all resumes) or a stop
  request: SIGINT / SIGTERM or :meth:`TrainingLoop.request_stop` finishes the current step, saves
  ``last/`` and returns; a second signal aborts;
- validation every ``val_every_steps`` steps and/or at each epoch end, and once more at the end when
  steps were taken since the last one (not after an interruption);
- ``last/`` (model checkpoint + optimiser + counters + RNG, :mod:`~wamdiff_ros.training.checkpointing`)
  is rewritten every ``save_every_steps`` steps, at epoch ends and at the end, always whole under a
  temporary name; ``best/`` is rewritten when a validation improves.

Under torch.distributed every rank runs the loop, takes the stop decision together with the others,
and only rank 0 writes files.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wamdiff_ros.atomic import atomic_write_json

BEST, LAST, HISTORY = "best", "last", "history.json"
_INTERRUPTED = "interrupted"


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a permutation of ``range(n)`` fixed by ``(seed, epoch)``, so a
    resumed run replays it without stored state."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


class TrainingLoop:
    """Runs (or resumes) one run into ``out``; see the module docstring.

    Args:
        out: the run folder (``last/``, ``best/``, ``history.json``).
        model: what checkpoints are written from (``save(folder, meta)``: a planner or a network).
        net: the ``torch.nn.Module`` whose weights ``last/`` restores.
        optimizer: the optimiser (its state goes into ``last/``).
        settings: ``epochs``, ``max_steps``, ``max_minutes``, ``seed``, ``threads``, ``save_every_steps``.
        steps_per_epoch: optimiser steps per epoch.
        val_every_steps: validate every this many steps (None: not within an epoch).
        val_at_epoch_end: validate (and save ``last/``) at each epoch end.
        val_in_budget: validation time counts against ``max_minutes`` (and the last validation's
            duration is reserved for the next one); else it is left out of ``train_seconds``.
        dist: this process's :class:`~wamdiff_ros.distributed.torchrun.DistContext` (default: a world of one).
    """

    desc = "train"

    def __init__(
        self,
        out,
        model,
        net,
        optimizer,
        settings,
        steps_per_epoch: int,
        *,
        val_every_steps: int | None = None,
        val_at_epoch_end: bool = True,
        val_in_budget: bool = True,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        dist=None,
    ):
        from wamdiff_ros.distributed.torchrun import DistContext

        self.out = Path(out)
        self.model = model
        self.net = net
        self.optimizer = optimizer
        self.settings = settings
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.total_steps = settings.epochs * self.steps_per_epoch
        self.val_every_steps = val_every_steps
        self.val_at_epoch_end = val_at_epoch_end
        self.val_in_budget = val_in_budget
        self.progress = progress
        self.dist = dist or DistContext()
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if not self.dist.is_main:
            self.log = lambda msg: None
        self.state: dict = {
            "step": 0,
            "epoch": 0,
            "step_in_epoch": 0,
            "train_seconds": 0.0,
            "validated_step": -1,
            "last_val_seconds": 0.0,
            "best": None,
            "history": [],
            "finished": False,
            "stop_reason": "",
        }
        self._stop = threading.Event()
        self._t_mark = 0.0

    # -- what a trainer supplies ---------------------------------------------------------------------
    def epoch_items(self, epoch: int) -> np.ndarray:
        """What the steps of ``epoch`` draw from, in order (sliced by :meth:`train_step`)."""
        raise NotImplementedError

    def train_step(self, order: np.ndarray, j: int) -> dict:
        """Step ``j`` of the epoch over ``order``: one optimiser step; returns its record (floats)."""
        raise NotImplementedError

    def validate(self, final: bool) -> dict | None:
        """Validate the current weights (``final``: the run is stopping mid-epoch); returns the record
        (``None`` on ranks other than 0). Subclasses call :meth:`save_best` when it improves."""
        raise NotImplementedError

    def meta(self, record: dict | None = None) -> dict:
        """What a checkpoint's ``meta`` records (``record``: the validation of a ``best/``)."""
        return {}

    def postfix(self, rec: dict) -> dict:
        """The progress bar's fields for a step record."""
        return {}

    def after_step(self, rec: dict) -> None:
        """Called after each step with its record (counters already advanced)."""

    def check_resume(self, folder: Path, doc: dict, state: dict) -> None:
        """Refuse a ``last/`` that does not belong to this run (CheckpointError)."""

    def history_doc(self):
        """What ``history.json`` holds."""
        return self.state["history"]

    def on_epoch_end(self) -> None:
        """Called at each epoch end after its validation, before the counters advance."""

    # -- state ---------------------------------------------------------------------------------------
    def resume(self) -> None:
        """Load ``out/last/`` (weights, optimiser, counters, RNG)."""
        from wamdiff_ros.models.checkpoint import CheckpointError, load_checkpoint, load_state
        from wamdiff_ros.training.checkpointing import load_training_state, recover_dir

        folder = recover_dir(self.out / LAST)
        if folder is None:
            raise CheckpointError(f"--resume: {self.out / LAST} does not exist (nothing to resume)")
        doc, tensors = load_checkpoint(folder)
        load_state(self.net, tensors, str(folder))
        state = load_training_state(folder, self.optimizer)
        self.check_resume(folder, doc, state)
        self.state.update({k: state[k] for k in self.state if k in state})
        self.state["finished"] = False
        self.state["stop_reason"] = ""

    def save_last(self) -> None:
        from wamdiff_ros.training.checkpointing import save_training_state

        if self.dist.is_main:
            save_training_state(self.out / LAST, self.model, self.optimizer, self.state, self.meta())

    def save_best(self, record: dict) -> None:
        from wamdiff_ros.training.checkpointing import staged_dir

        with staged_dir(self.out / BEST) as tmp:
            self.model.save(tmp, self.meta(record))

    def write_history(self) -> None:
        if self.dist.is_main:
            atomic_write_json(self.out / HISTORY, self.history_doc())

    def request_stop(self) -> None:
        """Finish the current step, save ``last/`` and return (thread-safe)."""
        self._stop.set()

    def _on_signal(self, signum, frame) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()
        self.log("stop requested: finishing the current step and saving last/ (again to abort)")

    # -- the loop ------------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.perf_counter()
        self.state["train_seconds"] += now - self._t_mark
        self._t_mark = now

    def progress_fraction(self) -> float:
        """Fraction of the run done: by steps, or by the time budget when that is further along."""
        s, budget = self.state, self.settings.max_minutes
        p = s["step"] / max(1, self.total_steps)
        if budget:
            p = max(p, s["train_seconds"] / (60.0 * budget))
        return p

    def _stop_reason(self) -> str:
        s, st = self.state, self.settings
        reserve = s["last_val_seconds"] if self.val_in_budget else 0.0
        if st.max_steps is not None and s["step"] >= st.max_steps:
            code = 3
        elif st.max_minutes and s["train_seconds"] + reserve >= 60.0 * st.max_minutes:
            code = 2
        else:
            code = int(self._stop.is_set())
        reasons = ("", _INTERRUPTED, f"time budget {st.max_minutes or 0:g} min", f"max_steps {st.max_steps}")
        return reasons[self.dist.max_int(code)]

    def _validate(self, final: bool) -> None:
        self._tick()
        rec = self.validate(final)
        self.state["validated_step"] = self.state["step"]
        if rec is not None and "val_seconds" in rec:
            self.state["last_val_seconds"] = rec["val_seconds"]
        if self.val_in_budget:
            self._tick()
        else:
            self._t_mark = time.perf_counter()

    def before_run(self) -> None:
        """Called once the loop is set up, before the first step (e.g. a validation of the start)."""

    def run(self, resume: bool = False) -> dict:
        """Train until ``epochs``, ``max_steps``, ``max_minutes`` or a stop request; returns a summary."""
        import torch

        st, s = self.settings, self.state
        torch.set_num_threads(st.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
            self.log(f"resumed at step {s['step']} (epoch {s['epoch']}) from {self.out / LAST}")
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=s["step"], desc=self.desc, unit="step", dynamic_ncols=True)
        self._t_mark = time.perf_counter()
        try:
            self.before_run()
            while s["epoch"] < st.epochs and not s["stop_reason"]:
                order = self.epoch_items(s["epoch"])
                while s["step_in_epoch"] < self.steps_per_epoch:
                    self._tick()
                    s["stop_reason"] = self._stop_reason()
                    if s["stop_reason"]:
                        break
                    rec = self.train_step(order, s["step_in_epoch"])
                    s["step"] += 1
                    s["step_in_epoch"] += 1
                    self._tick()
                    self.after_step(rec)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(**self.postfix(rec))
                    if self.val_every_steps and s["step"] % self.val_every_steps == 0:
                        self._validate(final=False)
                    if s["step"] % st.save_every_steps == 0:
                        self._tick()
                        self.write_history()
                        self.save_last()
                if s["stop_reason"]:
                    break
                if self.val_at_epoch_end:
                    self._validate(final=False)
                self.on_epoch_end()
                s["epoch"] += 1
                s["step_in_epoch"] = 0
                if self.val_at_epoch_end:
                    self._tick()
                    self.save_last()
            if s["stop_reason"] != _INTERRUPTED and s["step"] > s["validated_step"]:
                self._validate(final=True)
            s["finished"] = s["epoch"] >= st.epochs or (st.max_steps is not None and s["step"] >= st.max_steps)
            self._tick()
            self.write_history()
            self.save_last()
            self.dist.barrier()
        finally:
            if bar is not None:
                bar.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        return {
            "out": str(self.out),
            "steps": s["step"],
            "epochs": s["epoch"] + s["step_in_epoch"] / self.steps_per_epoch,
            "train_seconds": s["train_seconds"],
            "stop_reason": s["stop_reason"] or "completed",
            "best": s["best"],
        }


__all__ = ["BEST", "HISTORY", "LAST", "TrainingLoop", "epoch_order"]
