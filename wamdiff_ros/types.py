"""Data types that cross module boundaries: observations in, plans out, ground truth for scoring.

Conventions (REP-103/105), used everywhere in the package:

- Frames: ``map`` (world, fixed), ``base_link`` (ego: x forward, y left, z up, origin at the rear
  axle). A pose is ``(x, y, yaw)`` in metres and radians, yaw counter-clockwise from +x.
- Stamps are integer nanoseconds (``stamp_ns``, see :mod:`wamdiff_ros.stamps`); ``stamp`` is the same
  time in float seconds, for arithmetic. Durations in seconds. Speeds in m/s, accelerations in m/s², yaw rate in rad/s.
- Images are ``H×W×3`` ``uint8`` RGB.
- Arrays are numpy ``float64`` unless a docstring says otherwise; nothing here imports torch or rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from wamdiff_ros.stamps import as_ns, ns_to_seconds

COMMANDS: tuple[str, ...] = ("left", "straight", "right", "lane_change_left", "lane_change_right")
"""Driving commands a route can give (NAVSIM's left / straight / right, plus explicit lane changes)."""


def _as_array(value, shape_tail: tuple[int, ...], name: str, dtype=np.float64) -> np.ndarray:
    """Validate the trailing shape of ``value`` and return it as a contiguous array of ``dtype``."""
    arr = np.ascontiguousarray(value, dtype=dtype)
    tail = arr.shape[len(arr.shape) - len(shape_tail) :] if len(shape_tail) else ()
    ok = arr.ndim >= len(shape_tail) and all(e in (-1, a) for e, a in zip(shape_tail, tail))
    if not ok:
        want = "×".join("N" if e == -1 else str(e) for e in shape_tail)
        raise ValueError(f"{name}: expected an array of shape (…×{want}), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class TrajectorySpec:
    """Time grid of a planned trajectory: ``num_poses`` poses at ``dt`` s, first pose at ``dt``.

    The NAVSIM convention is 8 poses at 0.5 s (a 4 s horizon).
    """

    num_poses: int = 8
    dt: float = 0.5

    def __post_init__(self):
        if self.num_poses < 1:
            raise ValueError(f"TrajectorySpec.num_poses: expected >= 1, got {self.num_poses}")
        if not self.dt > 0:
            raise ValueError(f"TrajectorySpec.dt: expected > 0 s, got {self.dt}")

    @property
    def horizon(self) -> float:
        """Time of the last pose [s]."""
        return self.num_poses * self.dt

    @property
    def times(self) -> np.ndarray:
        """Relative times of the poses, shape (num_poses,) [s]: dt, 2·dt, …, horizon."""
        return self.dt * np.arange(1, self.num_poses + 1, dtype=np.float64)

    def to_dict(self) -> dict:
        return {"num_poses": self.num_poses, "dt": self.dt}

    @classmethod
    def from_dict(cls, d: dict) -> TrajectorySpec:
        return cls(num_poses=int(d["num_poses"]), dt=float(d["dt"]))


class NsStamped:
    """``stamp``: the dataclass's ``stamp_ns`` [ns] in float seconds, for arithmetic."""

    stamp_ns: int

    @property
    def stamp(self) -> float:
        """``stamp_ns`` in seconds, for arithmetic."""
        return ns_to_seconds(self.stamp_ns)


@dataclass
class EgoState(NsStamped):
    """Ego vehicle state at ``stamp``.

    Attributes:
        pose: (3,) ``(x, y, yaw)`` of base_link in the map/odom frame [m, m, rad].
        velocity: (2,) ``(vx, vy)`` in base_link [m/s].
        acceleration: (2,) ``(ax, ay)`` in base_link [m/s²].
        yaw_rate: [rad/s].
        stamp_ns: time of the state [ns].
    """

    pose: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(2))
    yaw_rate: float = 0.0
    stamp_ns: int = 0

    def __post_init__(self):
        self.pose = _as_array(self.pose, (3,), "EgoState.pose")
        self.velocity = _as_array(self.velocity, (2,), "EgoState.velocity")
        self.acceleration = _as_array(self.acceleration, (2,), "EgoState.acceleration")
        self.yaw_rate = float(self.yaw_rate)
        self.stamp_ns = as_ns(self.stamp_ns)

    @property
    def speed(self) -> float:
        """Longitudinal speed [m/s]."""
        return float(self.velocity[0])

    def is_finite(self) -> bool:
        values = (*self.pose, *self.velocity, *self.acceleration, self.yaw_rate)
        return all(math.isfinite(v) for v in values)

    def as_vector(self) -> np.ndarray:
        """Frame-free features for a network: (6,) ``(vx, vy, ax, ay, yaw_rate, speed)``."""
        return np.array([*self.velocity, *self.acceleration, self.yaw_rate, self.speed])


@dataclass
class Observation(NsStamped):
    """One synchronised input frame for a planner.

    Attributes:
        images: camera name -> H×W×3 uint8 RGB image, in the rig's camera order.
        ego: ego state at ``stamp_ns``.
        stamp_ns: time of the frame [ns] (the newest camera stamp of the synchronised set).
        command: one of :data:`COMMANDS`.
        instruction: free-text navigation instruction (may be empty).
        ego_history: (H, 3) past base_link poses ``(x, y, yaw)`` relative to the current base_link,
            oldest first, at the trajectory spec's ``dt`` (may be empty: shape (0, 3)).
        past_images: the same cameras about ``Planner.past_frame_s`` earlier, for planners that take a
            past frame (None otherwise).
    """

    images: dict[str, np.ndarray]
    ego: EgoState
    stamp_ns: int
    command: str = "straight"
    instruction: str = ""
    ego_history: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    past_images: dict[str, np.ndarray] | None = None

    def __post_init__(self):
        if self.command not in COMMANDS:
            raise ValueError(f"Observation.command: expected one of {COMMANDS}, got {self.command!r}")
        sets = [("images", self.images)] + ([("past_images", self.past_images)] if self.past_images is not None else [])
        for label, images in sets:
            for name, img in images.items():
                if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                    got = getattr(img, "shape", type(img).__name__), getattr(img, "dtype", None)
                    raise ValueError(f"Observation.{label}[{name!r}]: expected H×W×3 uint8 RGB, got {got}")
        self.ego_history = _as_array(self.ego_history, (3,), "Observation.ego_history").reshape(-1, 3)
        self.stamp_ns = as_ns(self.stamp_ns)


@dataclass
class Trajectory(NsStamped):
    """A planned or logged trajectory.

    Attributes:
        poses: (T, 3) ``(x, y, yaw)`` in ``frame`` at times ``spec.times`` after ``stamp_ns`` [m, m, rad].
        spec: the time grid.
        frame: ``"base_link"`` (relative to the ego pose at ``stamp_ns``) or a fixed frame name.
        stamp_ns: time the trajectory starts from [ns].
    """

    poses: np.ndarray
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    frame: str = "base_link"
    stamp_ns: int = 0

    def __post_init__(self):
        self.poses = _as_array(self.poses, (3,), "Trajectory.poses")
        if self.poses.shape != (self.spec.num_poses, 3):
            raise ValueError(
                f"Trajectory.poses: expected shape ({self.spec.num_poses}, 3) for {self.spec}, got {self.poses.shape}"
            )
        self.stamp_ns = as_ns(self.stamp_ns)

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.poses).all())


@dataclass
class PlanResult:
    """What a planner returns for one observation.

    Attributes:
        trajectory: the chosen plan in base_link.
        candidates: (K, T, 3) alternative plans in base_link (K may be 0).
        candidate_scores: (K,) planner's own score per candidate (higher is better).
        mode: ``"fast"`` (trajectory only) or ``"slow"`` (reasoning first), or ``"fallback"``.
        reasoning: reasoning text produced in slow mode ("" otherwise).
        confidences: (T,) per-waypoint confidence in [0, 1] where the family has one (else empty).
        timings_ms: stage name -> wall time [ms] (e.g. ``encode``, ``decode``, ``total``).
        moe: routing statistics, e.g. ``{"load": [...], "entropy": float}`` (empty without MoE).
        info: family-specific extras (JSON-serialisable).
    """

    trajectory: Trajectory
    candidates: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 3)))
    candidate_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mode: str = "fast"
    reasoning: str = ""
    confidences: np.ndarray = field(default_factory=lambda: np.zeros(0))
    timings_ms: dict[str, float] = field(default_factory=dict)
    moe: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in ("fast", "slow", "fallback"):
            raise ValueError(f"PlanResult.mode: expected 'fast', 'slow' or 'fallback', got {self.mode!r}")
        self.candidates = _as_array(self.candidates, (-1, 3), "PlanResult.candidates").reshape(
            -1, *self.trajectory.poses.shape
        )
        self.candidate_scores = np.asarray(self.candidate_scores, dtype=np.float64).reshape(-1)
        if len(self.candidate_scores) not in (0, len(self.candidates)):
            raise ValueError(
                f"PlanResult.candidate_scores: expected {len(self.candidates)} scores, got {len(self.candidate_scores)}"
            )


MARKINGS: tuple[str, ...] = ("solid", "dashed", "none")


class AgentType(IntEnum):
    """Agent classes, as NAVSIM distinguishes them for the no-collision metric."""

    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    STATIC = 3


class TrafficLight(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2
    UNKNOWN = 3


@dataclass
class Lane:
    """A lane of the road graph, in the map frame.

    Attributes:
        lane_id: unique id within the scene.
        centerline: (N, 2) points along the direction of travel [m], N >= 2.
        width: (N,) lane width at each centerline point [m].
        successors: ids of lanes this lane connects into.
        in_intersection: True for connector lanes inside a junction (DDC and LK are off there).
        speed_limit: [m/s].
        markings: painted line type on the ``(left, right)`` edge: ``"solid"``, ``"dashed"`` or ``"none"``.
    """

    lane_id: int
    centerline: np.ndarray
    width: np.ndarray
    successors: tuple[int, ...] = ()
    in_intersection: bool = False
    speed_limit: float = 30.0
    markings: tuple[str, str] = ("solid", "solid")

    def __post_init__(self):
        self.centerline = _as_array(self.centerline, (2,), f"Lane[{self.lane_id}].centerline").reshape(-1, 2)
        if len(self.centerline) < 2:
            raise ValueError(f"Lane[{self.lane_id}].centerline: expected >= 2 points, got {len(self.centerline)}")
        width = np.asarray(self.width, dtype=np.float64)
        self.width = np.broadcast_to(width, (len(self.centerline),)).copy()
        if not (self.width > 0).all():
            raise ValueError(f"Lane[{self.lane_id}].width: expected > 0 m everywhere")
        self.successors = tuple(int(s) for s in self.successors)
        if len(self.markings) != 2 or any(m not in MARKINGS for m in self.markings):
            raise ValueError(
                f"Lane[{self.lane_id}].markings: expected (left, right) from {MARKINGS}, got {self.markings}"
            )
        self.markings = tuple(self.markings)

    @property
    def headings(self) -> np.ndarray:
        """(N,) direction of travel at each centerline point [rad]."""
        d = np.diff(self.centerline, axis=0)
        h = np.arctan2(d[:, 1], d[:, 0])
        return np.append(h, h[-1])

    @property
    def boundaries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(left, right)`` boundary polylines, each (N, 2) [m]."""
        h = self.headings
        normal = np.stack([-np.sin(h), np.cos(h)], axis=1) * (self.width / 2)[:, None]
        return self.centerline + normal, self.centerline - normal


@dataclass
class Agents:
    """Other traffic participants over the scoring horizon, in the map frame.

    Index 0 on the time axis is the current time; step ``dt`` between entries. Logged futures are
    used non-reactively (NAVSIM's pseudo-simulation).

    Attributes:
        ids: (A,) int track ids.
        types: (A,) :class:`AgentType` values.
        sizes: (A, 2) box ``(length, width)`` [m].
        poses: (A, S, 3) ``(x, y, yaw)`` of box centres [m, m, rad].
        velocities: (A, S, 2) ``(vx, vy)`` in the map frame [m/s].
        valid: (A, S) bool, False where the agent is not observed.
        dt: time step of the S axis [s].
    """

    ids: np.ndarray
    types: np.ndarray
    sizes: np.ndarray
    poses: np.ndarray
    velocities: np.ndarray
    valid: np.ndarray
    dt: float = 0.1

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        a = len(self.ids)
        self.types = np.asarray(self.types, dtype=np.int64).reshape(a)
        self.sizes = _as_array(self.sizes, (2,), "Agents.sizes").reshape(a, 2)
        self.poses = _as_array(self.poses, (3,), "Agents.poses")
        if self.poses.ndim != 3 or self.poses.shape[0] != a:
            raise ValueError(f"Agents.poses: expected shape ({a}, S, 3), got {self.poses.shape}")
        s = self.poses.shape[1]
        self.velocities = _as_array(self.velocities, (2,), "Agents.velocities").reshape(a, s, 2)
        self.valid = np.asarray(self.valid, dtype=bool).reshape(a, s)

    @classmethod
    def empty(cls, steps: int = 1, dt: float = 0.1) -> Agents:
        return cls(
            ids=np.zeros(0, np.int64),
            types=np.zeros(0, np.int64),
            sizes=np.zeros((0, 2)),
            poses=np.zeros((0, steps, 3)),
            velocities=np.zeros((0, steps, 2)),
            valid=np.zeros((0, steps), bool),
            dt=dt,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_steps(self) -> int:
        return self.poses.shape[1]


@dataclass
class SceneTruth:
    """Ground truth of one frame for scoring a plan, in the map frame.

    Attributes:
        ego: the ego state at the frame (``ego.pose`` anchors base_link plans to the map).
        ego_size: ego box ``(length, width)`` [m]; ``rear_axle_to_center`` is the box centre's offset
            ahead of base_link [m].
        lanes: the road graph near the ego.
        route_lane_ids: lane ids of the route, in order; progress is measured along them.
        agents: other traffic with logged futures.
        human_trajectory: (T, 3) the logged ego future in base_link on ``spec``'s grid (the "human"
            of NAVSIM's EPDMS filter and of open-loop L2).
        spec: time grid of plans scored against this scene.
        traffic_lights: lane id -> (S,) :class:`TrafficLight` per agents time step (absent: none).
        scenario: scenario type (``highway``, ``merge``, ``intersection``, …) for per-type reports.
        previous_plan: (T, 3) last frame's plan in the previous base_link, for EC (None: EC = 1).
        previous_plan_offset: time between the previous plan and this frame [s].
    """

    ego: EgoState
    lanes: list[Lane]
    route_lane_ids: list[int]
    agents: Agents
    human_trajectory: np.ndarray
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    ego_size: tuple[float, float] = (5.0, 2.0)
    rear_axle_to_center: float = 1.5
    traffic_lights: dict[int, np.ndarray] = field(default_factory=dict)
    scenario: str = "highway"
    previous_plan: np.ndarray | None = None
    previous_plan_offset: float = 0.0

    def __post_init__(self):
        self.human_trajectory = _as_array(self.human_trajectory, (3,), "SceneTruth.human_trajectory")
        if self.human_trajectory.shape != (self.spec.num_poses, 3):
            raise ValueError(
                f"SceneTruth.human_trajectory: expected shape ({self.spec.num_poses}, 3), "
                f"got {self.human_trajectory.shape}"
            )
        known = {lane.lane_id for lane in self.lanes}
        missing = [i for i in self.route_lane_ids if i not in known]
        if missing:
            raise ValueError(f"SceneTruth.route_lane_ids: lanes {missing} are not in SceneTruth.lanes")
        if self.previous_plan is not None:
            self.previous_plan = _as_array(self.previous_plan, (3,), "SceneTruth.previous_plan")

    def lane(self, lane_id: int) -> Lane:
        for lane in self.lanes:
            if lane.lane_id == lane_id:
                return lane
        raise KeyError(f"SceneTruth: no lane with id {lane_id}")


@dataclass
class LogFrame(NsStamped):
    """What a log stores for one tick: the world now, without futures (they come from later frames).

    Attributes:
        stamp_ns: time of the tick [ns].
        episode: episode identifier (frames of one episode share it).
        ego: ego state in the map frame.
        agents: other traffic now, one time step (``agents.num_steps == 1``), map frame.
        route_lane_ids: the route's lanes, in order.
        command: one of :data:`COMMANDS`.
        instruction: natural-language navigation instruction.
        scenario: scenario type.
        traffic_lights: lane id -> current :class:`TrafficLight`.
    """

    stamp_ns: int
    episode: str
    ego: EgoState
    agents: Agents
    route_lane_ids: list[int]
    command: str = "straight"
    instruction: str = ""
    scenario: str = "highway"
    traffic_lights: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        self.stamp_ns = as_ns(self.stamp_ns)
