"""Rewards of sampled trajectories by pseudo-simulation: the NAVSIM scorer against the logged scene
(other agents follow their logged futures), one batched scorer call per group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.config import ConfigError

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


__all__ = ["METRICS", "RewardConfig", "group_rewards"]
