"""A planner driving the embedded world in process, exactly as planner_node runs it, without ROS.

:class:`LoopDriver` is a :func:`~wamdiff_ros.sim.episode.run_episode` driver. Each tick it hands the
planner node's :class:`~wamdiff_ros.planning.PlanningLoop` what sim_bridge_node publishes: the rig's
camera images (JPEG-encoded as on the bridge's compressed topics and in the recorded bags, or raw),
their camera_info, the odometry (pose, twist and yaw rate; no acceleration, which the loop estimates),
the route command and instruction, all stamped with the tick's sim time. It then runs one planning
cycle at that time, so the plan comes from the node's own synchronisation, input checks, ego history,
reasoning budget and fallback (hold the last plan, then a comfortable stop).

Unlike the ROS graph there is no middleware and no wall-clock deadline: the world waits for every
plan (the bridge drives on after ``trajectory_timeout_s``), so a slow machine changes only timings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.data.bag import START_TIME_NS
from wamdiff_ros.data.images import check_rgb, decode_compressed, encode_compressed
from wamdiff_ros.geometry import compose, relative
from wamdiff_ros.planning.loop import LoopConfig, PlanningLoop
from wamdiff_ros.types import EgoState, LogFrame, PlanResult, Trajectory

IMAGE_FORMATS = ("jpeg", "raw")
"""How camera images reach the loop: ``jpeg`` (encoded and decoded, as the demo's compressed topics and
the bags the models were trained on carry them) or ``raw`` (the rendered arrays as they are)."""


@dataclass
class Tick:
    """What the planning cycle of one tick did.

    Attributes:
        kind: ``plan``, ``hold`` (the last plan continued) or ``stop`` (a comfortable stop).
        mode: ``fast`` / ``slow`` (a plan) or ``fallback``.
        planner_ms: wall time of the planner's ``plan`` call [ms] (None for a fallback).
        cycle_ms: wall time of the whole cycle [ms].
        gate: the fast/slow gate's reason, for planners that report one ("" otherwise).
        reasons: why the cycle fell back (empty for a plan).
    """

    kind: str
    mode: str
    planner_ms: float | None
    cycle_ms: float
    gate: str = ""
    reasons: tuple[str, ...] = ()


def _decode_image(payload, size: tuple[int, int] | None) -> np.ndarray:
    if isinstance(payload, bytes):
        return decode_compressed(payload, "jpeg", size)
    image = check_rgb(payload, "raw camera image")
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise ValueError(f"raw camera image: expected {size[0]}x{size[1]}, got {image.shape[1]}x{image.shape[0]}")
    return image


def _decode_odometry(payload) -> EgoState:
    if not isinstance(payload, EgoState):
        raise ValueError(f"odometry: expected an EgoState, got {type(payload).__name__}")
    return payload


class LoopDriver:
    """``planner`` behind a :class:`PlanningLoop` with ``config`` (planner_node's parameters), fed the
    world's ticks; the rig is the planner's own. ``image_format``: one of :data:`IMAGE_FORMATS`.

    After an episode :attr:`ticks` holds one :class:`Tick` per tick (a fresh loop per episode, as the
    node's loop starts over when the bridge's next episode breaks the odometry)."""

    def __init__(self, planner, config: LoopConfig, image_format: str = "jpeg", jpeg_quality: int = 90):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format: expected one of {IMAGE_FORMATS}, got {image_format!r}")
        self.planner = planner
        self.rig = planner.rig
        self.config = config
        self.image_format = image_format
        self.jpeg_quality = int(jpeg_quality)
        self.ticks: list[Tick] = []
        self.reset()

    def reset(self) -> None:
        self.loop = PlanningLoop(self.planner, self.rig, self.config, _decode_image, _decode_odometry)
        for cam in self.rig.cameras:
            self.loop.on_camera_info(cam.name, cam.width, cam.height, cam.K.reshape(-1))
        self.ticks = []

    def _payload(self, image: np.ndarray):
        return encode_compressed(image, "jpeg", self.jpeg_quality) if self.image_format == "jpeg" else image

    def plan(self, frame: LogFrame, lanes, images: dict[str, np.ndarray] | None) -> PlanResult:
        if images is None:
            raise ValueError("LoopDriver.plan: expected camera images (run_episode with a renderer)")
        t = START_TIME_NS + frame.stamp_ns
        loop, ego = self.loop, frame.ego
        loop.on_command(frame.command)
        loop.on_instruction(frame.instruction)
        for cam in self.rig.cameras:
            loop.on_image(cam.name, t, self._payload(images[cam.name]))
        loop.on_odometry(t, EgoState(pose=ego.pose, velocity=ego.velocity, yaw_rate=ego.yaw_rate, stamp_ns=t))
        out = loop.step(t)
        if out is None:
            raise RuntimeError(
                f"LoopDriver: the planning loop produced nothing at tick {frame.stamp_ns} ns "
                f"(plan_rate_hz {self.config.plan_rate_hz} must be at least the world's tick rate)"
            )
        result = out.result
        self.ticks.append(
            Tick(
                out.kind,
                result.mode,
                out.planner_ms,
                out.processing_ms,
                str(result.info.get("gate", "")),
                out.reasons,
            )
        )
        poses = result.trajectory.poses
        if out.origin is not None and not np.array_equal(out.origin, ego.pose):
            poses = relative(ego.pose, compose(out.origin, poses))
        trajectory = Trajectory(poses, result.trajectory.spec, "base_link", t)
        return dataclasses.replace(result, trajectory=trajectory)


__all__ = ["IMAGE_FORMATS", "LoopDriver", "Tick"]
