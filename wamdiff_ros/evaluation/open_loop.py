"""Open-loop evaluation of a planner on logged frames: plan every N-th sample of a dataset, score it
against the log, and aggregate.

Per frame: NAVSIM PDMS / EPDMS and their sub-metrics (:func:`wamdiff_ros.scoring.score`; EC compares
with the plan of the previous evaluated frame of the same episode, as consecutive frames of a drive
do, and is 1 when there is none), open-loop L2 / ADE / FDE / box collisions
(:func:`wamdiff_ros.scoring.open_loop_metrics`), planning wall time, fast/slow mode and MoE routing
statistics when the planner reports them. No middleware is involved: ``wamdiff replay`` (bag in,
report out) calls :func:`evaluate_open_loop`; ``wamdiff eval`` runs :func:`evaluate_frames` on the
episodes of :func:`episode_chunks`, one fan-out task each (:mod:`wamdiff_ros.evaluation.tasks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wamdiff_ros.evaluation.aggregate import OPEN_LOOP_KEYS, aggregate
from wamdiff_ros.stamps import ns_to_seconds
from wamdiff_ros.types import Observation, PlanResult, SceneTruth


@dataclass
class FrameRecord:
    """One evaluated frame, handed to ``on_frame`` (e.g. for plots): dataset ``index``, the planner input
    ``obs``, its ``result``, the scoring ``scene`` (with ``previous_plan`` set) and the metrics ``row``."""

    index: int
    obs: Observation
    result: PlanResult
    scene: SceneTruth
    row: dict


def evaluate_open_loop(
    planner: Any,
    dataset: Any,
    every: int = 1,
    *,
    budget_ms: float | None = None,
    max_frames: int | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
    progress: bool = False,
) -> dict:
    """Evaluate ``planner`` (``plan(obs, budget_ms) -> PlanResult``) on samples ``0, every, 2·every, …``.

    Args:
        dataset: a :class:`wamdiff_ros.data.dataset.DrivingDataset` (anything with ``len``,
            ``observation(i)``, ``scene(i)`` and ``index`` of ``(bag, frame)`` pairs).
        every: evaluate every N-th sample (>= 1).
        budget_ms: latency budget passed to ``plan`` (None: no deadline).
        max_frames: stop after this many frames (None: all).
        on_frame: called with a :class:`FrameRecord` after each frame.
        progress: show a progress bar.

    Returns a JSON-able dict: ``frames`` (one row per frame: index, stamp, episode, scenario, mode,
    latency_ms, NAVSIM sub-metrics and totals, open-loop metrics, the plan as (T, 3) poses in base_link,
    MoE entropy when present) and ``aggregate`` (see :func:`aggregate`).
    """
    indices = frame_indices(dataset, every, max_frames)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="replay", unit="frame")
    rows, moe_loads = evaluate_frames(planner, dataset, indices, budget_ms=budget_ms, on_frame=on_frame)
    return {"frames": rows, "aggregate": aggregate(rows, moe_loads), "every": int(every)}


def frame_indices(dataset: Any, every: int = 1, max_frames: int | None = None) -> list[int]:
    """The samples an evaluation plans: ``0, every, 2·every, …``, at most ``max_frames`` of them;
    ValueError naming ``every`` / ``max_frames`` when out of range, or for an empty dataset."""
    if int(every) != every or every < 1:
        raise ValueError(f"every: expected an integer >= 1, got {every!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames: expected >= 1 or None, got {max_frames!r}")
    if len(dataset) == 0:
        raise ValueError("dataset: no samples (every bag frame lacks a full future horizon or its images)")
    return list(range(0, len(dataset), int(every)))[:max_frames]


def episode_of(dataset: Any, index: int) -> str:
    """The episode name of sample ``index`` ("" for a dataset without bags)."""
    if not hasattr(dataset, "bags"):
        return ""
    b, k = dataset.index[index]
    return dataset.bags[b].log.frames[k].episode


def episode_chunks(dataset: Any, indices: Sequence[int]) -> list[list[int]]:
    """``indices`` cut wherever the episode changes: EC chains a frame only to the previous evaluated
    frame of the same episode, so evaluating each chunk on its own gives the rows of one pass over all."""
    chunks: list[list[int]] = []
    last = None
    for i in indices:
        episode = episode_of(dataset, i)
        if not chunks or episode != last:
            chunks.append([])
        chunks[-1].append(int(i))
        last = episode
    return chunks


def evaluate_frames(
    planner: Any,
    dataset: Any,
    indices: Iterable[int],
    *,
    budget_ms: float | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
) -> tuple[list[dict], list[np.ndarray | None]]:
    """Plan and score the samples ``indices`` of ``dataset`` in order: the per-frame rows of
    :func:`evaluate_open_loop` and each row's MoE load (None where the planner reports none), for
    :func:`~wamdiff_ros.evaluation.aggregate.aggregate`.
    EC compares each frame with the previous frame of these ``indices`` when of the same episode."""
    from wamdiff_ros.scoring import open_loop_metrics, score

    rows: list[dict] = []
    moe_loads: list[np.ndarray | None] = []
    previous: tuple[str, float, np.ndarray] | None = None
    for i in indices:
        obs = dataset.observation(i)
        scene = dataset.scene(i)
        episode = episode_of(dataset, i)
        t0 = time.perf_counter()
        result = planner.plan(obs, budget_ms)
        latency_ms = (time.perf_counter() - t0) * 1e3
        poses = np.asarray(result.trajectory.poses, np.float64)
        if poses.shape != (scene.spec.num_poses, 3):
            raise ValueError(
                f"planner: frame {i}: expected a ({scene.spec.num_poses}, 3) plan on the dataset's grid, "
                f"got {poses.shape}"
            )
        if previous is not None and previous[0] == episode:
            scene.previous_plan = previous[2]
            scene.previous_plan_offset = ns_to_seconds(obs.stamp_ns - previous[1])
        scores = score(poses, scene).row(0)
        ol = {k: float(v[0]) for k, v in open_loop_metrics(poses, scene).items() if k in OPEN_LOOP_KEYS}
        row = {
            "index": int(i),
            "stamp": float(obs.stamp),
            "episode": episode,
            "scenario": scene.scenario,
            "mode": result.mode,
            "latency_ms": latency_ms,
            **scores,
            **ol,
            "plan": poses.round(4).tolist(),
        }
        load = result.moe.get("load")
        moe_loads.append(None if load is None else np.asarray(load, np.float64))
        if load is not None and "mean_entropy" in result.moe:
            row["moe_entropy"] = float(result.moe["mean_entropy"])
        rows.append(row)
        previous = (episode, obs.stamp_ns, poses)
        if on_frame is not None:
            on_frame(FrameRecord(int(i), obs, result, scene, row))
    return rows, moe_loads
