"""Constant-velocity baseline: drive on at the current body velocity and yaw rate.

The ego keeps its twist ``(vx, vy, ω)`` over the horizon, so the path is a circular arc (a straight
line when ``ω`` is 0), integrated exactly with the SE(2) exponential. With ``use_yaw_rate=False`` it
is NAVSIM's ConstantVelocityAgent: straight along the current heading at the current speed
``|(vx, vy)|``, yaw 0 (``navsim/agents/constant_velocity_agent.py``).

A checkpoint is a folder holding only ``config.json`` (the layout of :mod:`wamdiff_ros.models.checkpoint`,
without weights)::

    {"family": "constant_velocity", "format_version": 1, "meta": {},
     "config": {"rig": {...}, "spec": {"num_poses": 8, "dt": 0.5}, "use_yaw_rate": true}}

It needs no images (it still receives them, so it exercises the same input path as a network).
"""

from __future__ import annotations

import os
import time

import numpy as np

from wamdiff_ros.models.checkpoint import read_config
from wamdiff_ros.planners.base import Planner, check_rig, register
from wamdiff_ros.planning.motion import constant_twist_path
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult, Trajectory, TrajectorySpec

FAMILY = "constant_velocity"


class ConstantVelocityPlanner(Planner):
    """Extrapolates the ego's twist; see the module docstring.

    Attributes:
        rig: cameras the planner was "trained" with (checked by the node like any other family).
        spec: trajectory grid it plans on.
        use_yaw_rate: keep the yaw rate (arc) or go straight.
    """

    family = FAMILY

    def __init__(self, rig: Rig, spec: TrajectorySpec | None = None, use_yaw_rate: bool = True):
        self.rig = rig
        self.spec = spec or TrajectorySpec()
        self.use_yaw_rate = bool(use_yaw_rate)

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        t0 = time.perf_counter()
        poses = constant_twist_path(obs.ego, self.spec.times, self.use_yaw_rate)
        traj = Trajectory(poses, self.spec, "base_link", obs.stamp_ns)
        return PlanResult(
            trajectory=traj,
            candidates=poses[None],
            candidate_scores=np.ones(1),
            mode="fast",
            timings_ms={"total": (time.perf_counter() - t0) * 1e3},
        )

    def checkpoint_config(self) -> dict:
        return {**super().checkpoint_config(), "use_yaw_rate": self.use_yaw_rate}

    @classmethod
    def from_config(cls, config: dict, source: str = "<config>") -> ConstantVelocityPlanner:
        try:
            rig = Rig.from_dict(config["rig"], source)
            spec = TrajectorySpec.from_dict(config.get("spec", TrajectorySpec().to_dict()))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{source}: expected 'rig' and 'spec' in a constant_velocity config: {e!r}") from e
        return cls(rig, spec, bool(config.get("use_yaw_rate", True)))

    @classmethod
    def load(cls, folder: str | os.PathLike, rig: Rig | None = None) -> ConstantVelocityPlanner:
        """Load a checkpoint folder; ``rig`` (if given) must match the checkpoint's rig."""
        doc = read_config(folder)
        if doc["family"] != FAMILY:
            raise ValueError(f"checkpoint {folder}: family must be {FAMILY!r}, got {doc['family']!r}")
        planner = cls.from_config(doc["config"], f"checkpoint {folder}")
        check_rig(planner.rig, rig, f"checkpoint {folder}")
        return planner


@register(FAMILY)
def load(path: str | os.PathLike, rig: Rig | None = None, **options) -> ConstantVelocityPlanner:
    """Registry loader; ``use_yaw_rate`` may be overridden in ``options``."""
    planner = ConstantVelocityPlanner.load(path, rig)
    if "use_yaw_rate" in options:
        planner.use_yaw_rate = bool(options.pop("use_yaw_rate"))
    if options:
        raise ValueError(f"constant_velocity: unknown options {sorted(options)}")
    return planner
