"""``wamdiff eval`` as fan-out tasks: one task per evaluated run and episode, on
:mod:`wamdiff_ros.distributed.fanout` (Ray workers, or this process with ``--workers 1``).

A task (:class:`EvalJob`) is small and picklable: the :class:`EvalSource` from which a process rebuilds
the compared planners and the dataset (once per process, :func:`open_runs`), the run's label and one
episode's frames. It plans them with a fresh copy of the loaded model (sampling generator at its seed,
gate cost estimate at its prior), so an episode's rows depend on the episode and the run only, not on
what the process evaluated before nor on where it ran; EC chains frames within an episode only
(:func:`~wamdiff_ros.evaluation.open_loop.episode_chunks`). Results come back in task order, so the
merged rows, and their aggregate, are those of one pass over all frames whatever the workers.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from wamdiff_ros.evaluation.aggregate import RunningAggregate
from wamdiff_ros.evaluation.open_loop import episode_chunks, evaluate_frames, frame_indices
from wamdiff_ros.evaluation.runs import baseline_runs, model_runs, planner_dataset


@dataclass(frozen=True)
class EvalSource:
    """What a process needs to rebuild the runs of one evaluation (picklable and hashable).

    Attributes:
        bags: the dataset's bags (the same paths on every node of a cluster).
        model: checkpoint folder of the evaluated model (None: reference planners only).
        modes: the model's reasoning modes evaluated (``fast`` / ``slow`` / ``adaptive``).
        baselines: reference planners (:data:`~wamdiff_ros.evaluation.runs.BASELINES`).
        remaps: the bags' topic remaps as sorted ``(from, to)`` pairs.
        cache: decoded images cached on disk (the default cache folder).
        threads: torch intra-op threads of a process running tasks.
    """

    bags: tuple[str, ...]
    model: str | None = None
    modes: tuple[str, ...] = ("adaptive",)
    baselines: tuple[str, ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    cache: bool = True
    threads: int = 1


class EvalRuns:
    """The runs of an :class:`EvalSource` opened in this process: ``planner`` (the model as loaded, never
    planned with; None without a model), ``dataset`` on its grid, and ``labels`` of every run in order
    (the model's per mode, then the reference planners)."""

    def __init__(self, source: EvalSource):
        import torch

        from wamdiff_ros.planners.base import load_planner

        torch.set_num_threads(max(1, source.threads))
        self.source = source
        self.planner = load_planner(source.model) if source.model else None
        self.dataset = planner_dataset(
            source.bags, self.planner, cache=source.cache, scenes=False, remaps=dict(source.remaps)
        )
        self.baselines = baseline_runs(source.baselines, self.dataset)
        models = list(model_runs(self.planner, source.modes)) if self.planner is not None else []
        self.labels = [*models, *(b for b in self.baselines if b not in models)]

    def fresh(self, label: str):
        """The planner of run ``label``: a reference planner (stateless), or a new copy of the model."""
        if label in self.baselines:
            return self.baselines[label]
        if self.planner is None or label not in self.labels:
            raise ValueError(f"eval task: unknown run {label!r} (runs: {self.labels})")
        return model_runs(copy.deepcopy(self.planner), self.source.modes)[label]


@lru_cache(maxsize=2)
def open_runs(source: EvalSource) -> EvalRuns:
    """The :class:`EvalRuns` of ``source``, opened once per process."""
    return EvalRuns(source)


@dataclass(frozen=True)
class EvalJob:
    """One task: run ``label`` of ``source`` on the dataset samples ``frames`` (one episode, in order)."""

    source: EvalSource
    label: str
    frames: tuple[int, ...]
    budget_ms: float | None = None


@dataclass
class EvalChunk:
    """What a task hands back: the per-frame rows of its frames and each row's MoE load (None where the
    planner reports none)."""

    label: str
    rows: list[dict] = field(default_factory=list)
    moe_loads: list[np.ndarray | None] = field(default_factory=list)


def evaluate_job(job: EvalJob) -> EvalChunk:
    """Evaluate one :class:`EvalJob` (what a fan-out task runs)."""
    runs = open_runs(job.source)
    rows, loads = evaluate_frames(
        runs.fresh(job.label), runs.dataset, job.frames, budget_ms=job.budget_ms, on_frame=_gate_inputs
    )
    return EvalChunk(job.label, rows, loads)


def _gate_inputs(rec) -> None:
    """Keep the gate's inputs (complexity probability, fast-pass confidence) in each frame's row."""
    for key in ("p_complex", "fast_confidence"):
        if key in rec.result.info:
            rec.row[key] = float(rec.result.info[key])


def evaluate_runs(
    runs: EvalRuns,
    every: int = 1,
    max_frames: int | None = None,
    budget_ms: float | None = None,
    workers=None,
    progress: bool = True,
    on_rows: Callable[[str, list[dict]], None] | None = None,
) -> dict:
    """Evaluate every run of ``runs`` on the same frames (every ``every``-th, at most ``max_frames``),
    one task per run and episode on ``workers`` (:class:`~wamdiff_ros.distributed.fanout.Workers`;
    None: this process). Returns ``results[label] = {"aggregate": …}``.

    The rows are aggregated as the tasks finish and then dropped, so memory stays flat with the
    number of frames; ``on_rows(label, rows)`` receives each task's rows in task order (e.g. to stream
    them to disk), with the gate's inputs ``p_complex`` / ``fast_confidence`` where the planner
    reports them."""
    from wamdiff_ros.distributed import fanout

    chunks = episode_chunks(runs.dataset, frame_indices(runs.dataset, every, max_frames))
    jobs = [EvalJob(runs.source, label, tuple(c), budget_ms) for label in runs.labels for c in chunks]
    workers = (workers or fanout.Workers(1)).at_most(len(jobs))
    aggregates = {label: RunningAggregate() for label in runs.labels}
    done = 0

    def shown(bar, chunk: EvalChunk) -> None:
        nonlocal done
        done += len(chunk.rows)
        bar.set_postfix_str(f"{chunk.label}, {done} frames", refresh=False)

    results = fanout.map_ordered(
        evaluate_job, jobs, workers, total=len(jobs), desc="eval", progress=progress, on_result=shown
    )
    with contextlib.closing(results):
        for chunk in results:
            for row, load in zip(chunk.rows, chunk.moe_loads):
                aggregates[chunk.label].add(row, load)
            if on_rows is not None:
                on_rows(chunk.label, chunk.rows)
    return {label: {"aggregate": acc.result()} for label, acc in aggregates.items()}


__all__ = ["EvalChunk", "EvalJob", "EvalRuns", "EvalSource", "evaluate_job", "evaluate_runs", "open_runs"]
