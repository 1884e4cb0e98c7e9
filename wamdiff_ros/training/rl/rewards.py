"""Rewards of sampled trajectories by pseudo-simulation: the NAVSIM scorer against the logged scene
(other agents follow their logged futures), one batched scorer call per group.

Scoring a step's groups is the RL loop's costly part (DiffusionDriveV2's authors call it their
bottleneck), so :func:`score_groups` can run it on :mod:`wamdiff_ros.distributed.fanout` workers, one
task per group (:class:`RewardJob`: the dataset's source, the sample index and the poses; the worker
builds the scene itself, since a scene pickles to megabytes). A worker computes what
:func:`score_group` computes in this process, so the rewards are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wamdiff_ros.config import ConfigError

if TYPE_CHECKING:
    from wamdiff_ros.data.dataset import DatasetSource

METRICS = ("pdms", "epdms")


@dataclass(frozen=True)
class RewardConfig:
    """``reward = scale · metric − at_fault_penalty · [NC = 0] − ade_weight · ADE``.

    Attributes:
        metric: ``pdms`` (NAVSIM v1) or ``epdms`` (v2, with the human filter).
        scale: multiplies the metric (AutoVLA uses PDMS·10; advantages are group-normalised, so the
            scale only matters relative to the penalties).
        at_fault_penalty: subtracted when the candidate has an at-fault collision (NC = 0).
        ade_weight: per metre of average displacement from the logged future (an imitation anchor; 0 = off).
    """

    metric: str = "pdms"
    scale: float = 1.0
    at_fault_penalty: float = 0.0
    ade_weight: float = 0.0

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ConfigError(f"rl reward.metric: expected one of {METRICS}, got {self.metric!r}")
        bad = [k for k in ("scale", "at_fault_penalty", "ade_weight") if not getattr(self, k) >= 0]
        if bad or not self.scale > 0:
            raise ConfigError(f"rl reward: scale must be > 0 and penalties >= 0, got {self}")


def group_rewards(poses: np.ndarray, scene, config: RewardConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(G, T, 3) trajectories in base_link -> (G,) rewards and the per-candidate sub-metrics
    (``PDMS``, ``EPDMS``, ``NC``, … and ``ade`` [m])."""
    from wamdiff_ros.scoring import open_loop_metrics, score

    result = score(poses, scene)
    metrics = result.columns()
    metrics["ade"] = np.asarray(open_loop_metrics(poses, scene)["ade"], np.float64)
    reward = config.scale * metrics[config.metric.upper()]
    if config.at_fault_penalty:
        reward = reward - config.at_fault_penalty * (metrics["NC"] == 0.0)
    if config.ade_weight:
        reward = reward - config.ade_weight * metrics["ade"]
    return reward, metrics


@dataclass
class GroupReward:
    """A scored group: ``rewards`` (G,), the per-candidate sub-metrics ``metrics`` (as
    :func:`group_rewards`) and ``logged``, the reward of the logged future (None when not asked for)."""

    rewards: np.ndarray
    metrics: dict[str, np.ndarray]
    logged: float | None = None


def score_group(poses: np.ndarray, scene, config: RewardConfig, logged: bool = False) -> GroupReward:
    """:func:`group_rewards` of (G, T, 3) ``poses`` on ``scene``, and with ``logged`` the reward of the
    scene's logged future."""
    rewards, metrics = group_rewards(poses, scene, config)
    human = float(group_rewards(scene.human_trajectory[None], scene, config)[0][0]) if logged else None
    return GroupReward(rewards, metrics, human)


@dataclass(frozen=True)
class RewardJob:
    """One group to score on a worker (picklable): sample ``index`` of the dataset opened from ``source``,
    its (G, T, 3) ``poses`` in base_link, the reward ``config`` and whether to score the ``logged`` future."""

    source: DatasetSource
    index: int
    poses: np.ndarray
    config: RewardConfig
    logged: bool = False


def score_job(job: RewardJob) -> GroupReward:
    """:func:`score_group` of one :class:`RewardJob` (what a fan-out task runs)."""
    return score_group(job.poses, job.source.open().scene(job.index), job.config, job.logged)


def score_groups(jobs: Sequence[RewardJob], workers) -> list[GroupReward]:
    """Score every job on ``workers`` (:class:`~wamdiff_ros.distributed.fanout.Workers`), in job order."""
    from wamdiff_ros.distributed import fanout

    return list(fanout.map_ordered(score_job, jobs, workers, total=len(jobs), desc="rewards", progress=False))


__all__ = [
    "METRICS",
    "GroupReward",
    "RewardConfig",
    "RewardJob",
    "group_rewards",
    "score_group",
    "score_groups",
    "score_job",
]
