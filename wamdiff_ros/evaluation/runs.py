"""Evaluation runs: the planners compared on one dataset (a checkpoint per reasoning mode, reference
planners); :mod:`wamdiff_ros.evaluation.tasks` evaluates each of them on the same frames.

Reference planners (``BASELINES``):

- ``constant_velocity``: :class:`~wamdiff_ros.planners.constant_velocity.ConstantVelocityPlanner`, the
  ego's current twist (speed and yaw rate: an arc) held over the horizon;
- ``navsim_constant_velocity``: the same planner as NAVSIM's ConstantVelocityAgent (straight along the
  heading at the current speed), the constant-velocity row of NAVSIM's tables;
- ``expert``: the expert's logged future itself (:class:`LoggedPlanner`, label ``expert_log``), the
  "human" row of NAVSIM tables (its EP is < 1 where the PDM-Closed reference progresses further).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wamdiff_ros.types import Observation, PlanResult, Trajectory

BASELINES = ("constant_velocity", "navsim_constant_velocity", "expert")
MODES = ("fast", "slow", "adaptive")


class LoggedPlanner:
    """Plans the logged future of the dataset frame that an observation came from (the expert's plan).

    Frames are matched by stamp and ego position, so it works whatever order the frames come in.
    """

    family = "expert_log"
    history = 0

    def __init__(self, dataset):
        self.rig = dataset.rig
        self.spec = dataset.spec
        self._futures: dict[tuple, tuple[int, int]] = {}
        for b, k in dataset.index:
            f = dataset.bags[b].log.frames[k]
            self._futures[self._key(f.stamp_ns, f.ego.pose)] = (b, k)
        self._dataset = dataset

    @staticmethod
    def _key(stamp_ns: int, pose) -> tuple:
        return (int(stamp_ns), round(float(pose[0]), 3), round(float(pose[1]), 3))

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        key = self._key(obs.stamp_ns, obs.ego.pose)
        if key not in self._futures:
            raise ValueError(f"LoggedPlanner: observation at stamp {obs.stamp_ns} ns is not a frame of its dataset")
        b, k = self._futures[key]
        future = self._dataset.bags[b].target(k, self.spec)[0]
        poses = np.asarray(future, np.float64).copy()
        return PlanResult(
            trajectory=Trajectory(poses, self.spec, "base_link", obs.stamp_ns),
            candidates=poses[None],
            candidate_scores=np.ones(1),
            mode="fast",
        )


class ModeView:
    """The same planner object with its reasoning mode set for the duration of each ``plan`` call."""

    def __init__(self, planner, mode: str):
        self._planner = planner
        self.mode = mode
        self.family = planner.family
        self.rig = planner.rig
        self.spec = planner.spec

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        self._planner.set_mode(self.mode)
        return self._planner.plan(obs, budget_ms)


def parse_modes(text: str) -> list[str]:
    """``"fast,slow"`` -> ``["fast", "slow"]``; ValueError naming ``--mode`` unless every entry is one of
    :data:`MODES` and there is at least one."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--mode: expected fast, slow and/or adaptive, got {text!r}")
    return modes


def planner_dataset(bags: Sequence[str], planner=None, *, cache: bool = True, scenes: bool = True, remaps=None):
    """A :class:`~wamdiff_ros.data.dataset.DrivingDataset` of ``bags`` on ``planner``'s trajectory grid,
    history, past frame and rig (the bags' own without a planner); ``cache``: decoded images on disk."""
    from wamdiff_ros.data.dataset import DrivingDataset, default_cache_dir

    return DrivingDataset(
        list(bags),
        spec=planner.spec if planner is not None else None,
        history=planner.history if planner is not None else 0,
        cache_dir=default_cache_dir() if cache else None,
        rig=planner.rig if planner is not None else None,
        scenes=scenes,
        remaps=remaps,
        past_frame_s=planner.past_frame_s if planner is not None else 0.0,
    )


def model_runs(planner, modes: Sequence[str], label: str | None = None) -> dict:
    """``label -> planner`` of one checkpoint: ``<label>/<mode>`` per mode for a family with a fast/slow
    gate, else ``<label>`` once (``label`` defaults to the family)."""
    label = label or planner.family
    if planner.modes:
        return {f"{label}/{mode}": ModeView(planner, mode) for mode in modes}
    return {label: planner}


def baseline_runs(names: Sequence[str], dataset) -> dict:
    """``label -> planner`` of the reference planners ``names`` (see :data:`BASELINES`) on ``dataset``."""
    from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner

    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"baselines: unknown {unknown}; expected some of {', '.join(BASELINES)}")
    runs: dict = {}
    if "constant_velocity" in names:
        runs["constant_velocity"] = ConstantVelocityPlanner(dataset.rig, dataset.spec)
    if "navsim_constant_velocity" in names:
        runs["navsim_constant_velocity"] = ConstantVelocityPlanner(dataset.rig, dataset.spec, use_yaw_rate=False)
    if "expert" in names:
        runs["expert_log"] = LoggedPlanner(dataset)
    return runs
