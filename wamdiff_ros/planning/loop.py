"""One planning cycle at a time: pick the newest synchronised inputs, validate them, plan or fall back.

Inputs arrive through ``on_*`` methods (subscription callbacks; thread-safe, cheap: images are only
decoded for the set that gets planned; ``on_image`` / ``on_odometry`` say whether a new complete set is
ready). A planning thread calls :meth:`PlanningLoop.step` when one is and at least every
``1 / plan_rate_hz`` s; it returns what to publish, or None.

Rules:

- Stamps and node times are integer nanoseconds; an output answers its input set with the set's exact
  stamp. Durations (settings, ages) are in seconds.
- A set is planned as soon as it is complete if its stamp is at least ``1 / plan_rate_hz`` s after the
  previous planned set's (faster inputs are decimated by stamp, never queued, so no cycle waits).
- A camera whose camera_info shows the rig's field of view at another resolution (same aspect ratio,
  focal length scaled with the width) has its images resized to the rig's size; any other size is
  refused, as is a camera_info with another aspect ratio or field of view.
- Stale, missing, mis-sized, non-finite or undecodable inputs never reach the planner: the cycle
  returns a fallback with the reasons instead. So does a planner that raises or returns non-finite
  poses.
- Fallback: the last valid plan, re-expressed in the current base_link, while it is younger than
  ``fallback_hold_s``; else a comfortable stop at ``fallback_decel``.
- With no new set for ``input_timeout_s``, a fallback is returned once per cycle period; not in the
  first cycle after the node clock leapt forward by more than that (a simulator starting its next
  episode publishes the new time just before that episode's first frame).
- A cycle slower than ``deadline_ms`` is still published and counted as a deadline miss.
- Time going backwards (inputs or node clock: a bag loop, a simulator reset) resets the sync, the
  ego history and the held plan. When the inputs jump back first, their sets are not called stale
  while the node clock has yet to follow (it may lag them: /clock arrives on another thread), for
  up to ``input_timeout_s`` of wall time.
- A break in the odometry (a gap longer than ``input_timeout_s``, or a pose farther from the previous
  one than their speeds explain by :data:`ODOM_JUMP_M`: the next episode of a simulator or a bag, a
  relocalisation) drops the ego history and the held plan, so poses from before the break never
  reach the planner as the ego's past.
- A planner with ``past_frame_s`` gets, beside each set, the camera set of the planned cycle nearest
  that long before (:func:`~wamdiff_ros.stamps.past_frame_index`, the rule its training data used);
  until the loop has planned that long, and after a break, the nearest it has, down to the set itself.
  Past sets are those the loop planned, so a plan rate well below ``1 / past_frame_s`` coarsens them.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wamdiff_ros.data.images import fit_to_camera
from wamdiff_ros.geometry import compose, prepend_origin, resample, wrap_angle
from wamdiff_ros.planners.base import Planner
from wamdiff_ros.planning.fallback import comfortable_stop, continue_plan
from wamdiff_ros.planning.motion import propagate
from wamdiff_ros.planning.sync import ApproxTimeSync, SyncSet
from wamdiff_ros.rig import Rig
from wamdiff_ros.stamps import ns_to_seconds, past_frame_index, seconds_to_ns
from wamdiff_ros.types import COMMANDS, EgoState, Observation, PlanResult, Trajectory

ODOM = "odom"
"""Stream name of the odometry in the sync (cameras use their rig names)."""

LEVEL_OK, LEVEL_WARN, LEVEL_ERROR = 0, 1, 2

ACCEL_WINDOW_S = 0.2
"""Odometry is differentiated over about this long to estimate acceleration (Odometry carries none)."""

ODOM_JUMP_M = 2.0
"""Consecutive odometry poses farther apart than their speeds can explain by more than this [m] break
the ego history (see the module docstring)."""

RATE_TOLERANCE = 0.25
"""Sets may be this fraction of a period closer than ``1 / plan_rate_hz`` (stamp jitter must not skip frames)."""

CLOCK_BACK_NS = 1_000
"""The node clock counts as gone back when it reads more than this before a mark [ns]."""

PAST_FRAME_MARGIN_S = 0.5
"""Planned camera sets are kept this much longer than the planner's ``past_frame_s`` [s]."""


def _checked(planner: Planner | None) -> Planner | None:
    if planner is not None and not isinstance(planner, Planner):
        raise TypeError(f"planner: expected a wamdiff_ros.planners.base.Planner, got {type(planner).__name__}")
    return planner


@dataclass
class LoopConfig:
    """Run-time settings (the planner_node parameters of the same names; see config/schema/).

    ``budget_ms`` None plans without a deadline (the gate then decides by the scene alone, not by
    this machine's timing: what an offline evaluation that must be reproducible wants)."""

    sync_slop_s: float = 0.05
    input_timeout_s: float = 0.5
    plan_rate_hz: float = 10.0
    deadline_ms: float = 100.0
    budget_ms: float | None = 80.0
    fallback_hold_s: float = 1.0
    fallback_decel: float = 2.0

    def __post_init__(self):
        checks = {
            "sync_slop_s": self.sync_slop_s >= 0,
            "input_timeout_s": self.input_timeout_s > 0,
            "plan_rate_hz": self.plan_rate_hz > 0,
            "deadline_ms": self.deadline_ms > 0,
            "budget_ms": self.budget_ms is None or self.budget_ms > 0,
            "fallback_hold_s": self.fallback_hold_s >= 0,
            "fallback_decel": self.fallback_decel > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (ok and (value is None or math.isfinite(value))):
                raise ValueError(f"LoopConfig.{name}: invalid value {getattr(self, name)!r}")

    @classmethod
    def from_params(cls, params: dict) -> LoopConfig:
        """Pick this config's fields out of a parameter mapping (other keys are ignored)."""
        return cls(**{k: float(params[k]) for k in cls.__dataclass_fields__ if k in params})

    @property
    def period(self) -> float:
        return 1.0 / self.plan_rate_hz


@dataclass
class CycleOutput:
    """What one cycle publishes.

    Attributes:
        result: the plan (``mode`` "fast"/"slow") or the fallback (``mode`` "fallback"); trajectory in
            the base_link at ``stamp_ns``.
        stamp_ns: plan time [ns]; pose k (0-based) is at ``stamp_ns + (k + 1)·dt``.
        origin: (3,) that base_link's pose in the odometry frame, or None if unknown (no odometry yet).
        kind: ``"plan"``, ``"hold"`` (last plan continued) or ``"stop"`` (comfortable stop).
        reasons: why this is a fallback (empty for a plan).
        input_stamp_ns: sensor stamp the output answers [ns] (None for a fallback on missing inputs).
        processing_ms: wall time of the cycle [ms].
        planner_ms: wall time of the planner's ``plan`` call alone [ms] (None when it was not called).
        deadline_missed: ``processing_ms`` exceeded ``deadline_ms``.
    """

    result: PlanResult
    stamp_ns: int
    origin: np.ndarray | None
    kind: str
    reasons: tuple[str, ...] = ()
    input_stamp_ns: int | None = None
    processing_ms: float = 0.0
    planner_ms: float | None = None
    deadline_missed: bool = False


@dataclass
class Health:
    """Summary for /diagnostics: ``level`` 0 OK, 1 WARN, 2 ERROR, a one-line ``message``, key values."""

    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _HeldPlan:
    """The last valid plan, kept as planned (base_link at ``stamp_ns``) and expressed in the odometry frame
    only when a fallback continues it: a cycle that plans should not pay for that before publishing."""

    origin: np.ndarray  # (3,) ego pose at plan time, odometry frame
    local: np.ndarray  # (T, 3) planned poses in base_link at plan time
    offsets: np.ndarray  # (T,) their times after stamp_ns [s]
    stamp_ns: int

    @functools.cached_property
    def poses(self) -> np.ndarray:
        """(T+1, 3) in the odometry frame, the ego pose at plan time first."""
        return compose(self.origin, prepend_origin(self.local))

    @functools.cached_property
    def times(self) -> np.ndarray:
        """(T+1,) after ``stamp_ns`` [s], 0 first."""
        return np.concatenate([[0.0], self.offsets])

    def age(self, stamp_ns: int) -> float:
        """Time from the plan to ``stamp_ns`` [s]."""
        return ns_to_seconds(stamp_ns - self.stamp_ns)


class _Invalid:
    """An input that failed to convert; the reason travels through the sync to the cycle that uses it."""

    def __init__(self, reason: str):
        self.reason = reason


class PlanningLoop:
    """Input buffers, the planning cycle and its counters, for one planner and one rig.

    Args:
        planner: a :class:`~wamdiff_ros.planners.base.Planner` (None: none loaded yet; every cycle falls
            back); its ``spec`` and ``history`` say what the loop feeds it.
        rig: the cameras the inputs must match (names, sizes, fields of view).
        config: run-time settings.
        decode_image: ``(payload, (width, height) or None) -> H×W×3 uint8 RGB``, of that size (None: any);
            raises on bad input.
        decode_odom: ``payload -> EgoState``; raises on bad input.
        wall: monotonic wall clock [s] for processing times.
    """

    def __init__(
        self,
        planner: Planner | None,
        rig: Rig,
        config: LoopConfig,
        decode_image: Callable[[Any, tuple[int, int] | None], np.ndarray],
        decode_odom: Callable[[Any], EgoState],
        wall: Callable[[], float] = time.perf_counter,
    ):
        self.rig = rig
        self._config = config
        self._decode_image = decode_image
        self._decode_odom = decode_odom
        self._wall = wall
        self._lock = threading.RLock()
        self._planner = _checked(planner)
        self.sync = ApproxTimeSync([*rig.names, ODOM], config.sync_slop_s, key_streams=rig.names)
        self._camera_info: dict[str, str | None] = {}
        self._camera_view: dict[str, tuple[int, int, float]] = {}
        self._command = "straight"
        self._instruction = ""
        self._bad_command: str | None = None
        self._odom: deque[EgoState] = deque()
        self._frames: deque[tuple[int, dict[str, np.ndarray]]] = deque()
        self._last_valid_ego: EgoState | None = None
        self._held: _HeldPlan | None = None
        self._started: int | None = None
        self._last_fallback_time: int | None = None
        self._last_set_stamp: int | None = None
        self._last_output: CycleOutput | None = None
        self._input_jump_wall: float | None = None
        self._last_step_now: int | None = None
        self.waiting_for_clock = False
        """The last :meth:`step` held a set back until the node clock follows the inputs back in time:
        call it again soon (the clock moves without new inputs), not only when the next set is ready."""
        self.counts: Counter = Counter()
        self.reason_counts: Counter = Counter()
        self._processing = deque(maxlen=200)
        self._moe_load: Any = None  # the last plan's MoE expert load (array-like), formatted on report
        self._reported = Counter()

    # ---- configuration -------------------------------------------------------------------------

    @property
    def config(self) -> LoopConfig:
        return self._config

    @config.setter
    def config(self, config: LoopConfig) -> None:
        with self._lock:
            self._config = config
            self.sync.slop = config.sync_slop_s

    @property
    def planner(self) -> Planner | None:
        return self._planner

    def swap_planner(self, planner: Planner | None) -> None:
        """Replace the planner atomically; the next cycle uses the new one, a running cycle finishes."""
        self._planner = _checked(planner)

    # ---- inputs (subscription callbacks) -------------------------------------------------------

    def on_image(self, camera: str, stamp_ns: int, payload: Any) -> bool:
        """Queue a camera image stamped ``stamp_ns`` [ns] (decoded only if its set gets planned); True if a
        new complete set is ready."""
        if camera not in self.rig.names:
            raise KeyError(f"PlanningLoop.on_image: camera {camera!r} is not in rig {self.rig.names}")
        return self._push(camera, stamp_ns, payload)

    def _push(self, stream: str, stamp_ns: int, payload: Any) -> bool:
        if self.sync.push(stream, stamp_ns, payload):
            self._on_time_jump()
            self._input_jump_wall = self._wall()
            return True
        return self.sync.newest(only_new=True) is not None

    def on_camera_info(self, camera: str, width: int, height: int, k: Any) -> None:
        """Check a camera_info against the rig: the rig's view at its size or scaled to another
        (:meth:`~wamdiff_ros.rig.CameraSpec.view_problem`); images of an accepted size are then taken."""
        spec = self.rig.camera(camera)
        fx = float(np.asarray(k, np.float64).reshape(-1)[0]) if len(k) else float("nan")
        problem = spec.view_problem(int(width), int(height), fx)
        with self._lock:
            self._camera_info[camera] = f"camera_info {camera}: {problem}" if problem else None
            if problem:
                self._camera_view.pop(camera, None)
            else:
                self._camera_view[camera] = (int(width), int(height), fx)

    def on_odometry(self, stamp_ns: int, payload: Any) -> bool:
        """Queue an odometry message stamped ``stamp_ns`` [ns] (its acceleration estimated from the previous
        ones); True as :meth:`on_image`."""
        try:
            ego = self._decode_odom(payload)
            item: Any = ego if ego.is_finite() else _Invalid("odometry: non-finite pose or twist")
        except Exception as e:
            item = _Invalid(f"odometry: {e}")
        with self._lock:
            if isinstance(item, EgoState):
                if self._odom and item.stamp_ns < self._odom[-1].stamp_ns:
                    self._odom.clear()
                elif self._odom and self._odometry_break(self._odom[-1], item):
                    self._odom.clear()
                    self._frames.clear()
                    self._held = None
                    self.counts["odometry_breaks"] += 1
                item = self._with_acceleration(item)
                self._odom.append(item)
                self._last_valid_ego = item
                horizon = self._history_len() * self._spec_dt() + 2 * ACCEL_WINDOW_S + 1.0
                while len(self._odom) > 2 and ns_to_seconds(item.stamp_ns - self._odom[0].stamp_ns) > horizon:
                    self._odom.popleft()
            return self._push(ODOM, stamp_ns, item)

    def on_command(self, text: str) -> None:
        with self._lock:
            if text in COMMANDS:
                self._command, self._bad_command = text, None
            else:
                self._bad_command = f"command {text!r} is not one of {COMMANDS}; keeping {self._command!r}"

    def on_instruction(self, text: str) -> None:
        with self._lock:
            self._instruction = str(text)

    # ---- the cycle -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _unlocked(self):
        """Release the state lock held by :meth:`step` while images decode and the model plans, so input
        callbacks never wait on inference (holding it made the executor's callback threads pile up on
        the lock and starve the planning thread of the GIL: plans of 2-7 s instead of 20-40 ms)."""
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()

    def step(self, now: int) -> CycleOutput | None:
        """Run one cycle at node time ``now`` [ns]; returns what to publish, or None (nothing due).

        ``now <= 0`` means the clock has not started (sim time before the first /clock): nothing runs.
        """
        planner = self._planner
        if planner is None or now <= 0:
            return None
        with self._lock:
            self._check_clock(now)
            cfg = self._config
            leapt = self._last_step_now is not None and _sec(now, self._last_step_now) > cfg.input_timeout_s
            self._last_step_now = now
            candidate, last = self.sync.newest(only_new=True), self._last_set_stamp
            self.waiting_for_clock = candidate is not None and self._awaiting_clock(candidate, now, cfg)
            if self.waiting_for_clock:
                return None
            if self._started is None:
                self._started = now
            if candidate is not None and (
                last is None or _sec(candidate.key_ns, last) >= cfg.period * (1 - RATE_TOLERANCE)
            ):
                taken = self.sync.take_newest()
                if taken is not None:
                    return self._remember(self._cycle(taken, now, planner, cfg), now)
            reference = self._last_set_stamp if self._last_set_stamp is not None else self._started
            last_fb = self._last_fallback_time
            if (
                _sec(now, reference) > cfg.input_timeout_s
                and not leapt
                and (last_fb is None or _sec(now, last_fb) >= cfg.period * (1 - RATE_TOLERANCE))
            ):
                t0 = self._wall()
                reasons = self._missing_reasons(now, cfg)
                return self._remember(self._fallback(now, reasons, None, None, t0, planner), now)
            return None

    def _awaiting_clock(self, s: SyncSet, now: int, cfg: LoopConfig) -> bool:
        """The inputs jumped back in time less than ``input_timeout_s`` of wall time ago and ``s`` would be
        stale only because the node clock has not followed them yet (see the module docstring)."""
        jumped = self._input_jump_wall
        if jumped is None or _sec(now, s.oldest_ns) <= cfg.input_timeout_s:
            return False
        if self._wall() - jumped < cfg.input_timeout_s:
            return True
        self._input_jump_wall = None
        return False

    def _cycle(self, s: SyncSet, now: int, planner: Planner, cfg: LoopConfig) -> CycleOutput:
        t0 = self._wall()
        key = s.key_ns
        self._last_set_stamp = key
        self._input_jump_wall = None
        reasons: list[str] = []
        age = _sec(now, s.oldest_ns)
        stale = age > cfg.input_timeout_s
        if stale:
            reasons.append(f"stale: newest complete input set is {age:.3f} s old (limit {cfg.input_timeout_s} s)")
        elif -age > cfg.input_timeout_s:
            reasons.append(f"clock: inputs are stamped {-age:.3f} s ahead of the node clock")
        images: dict[str, np.ndarray] = {}
        info_problems = {cam.name: self._camera_info.get(cam.name) for cam in self.rig.cameras}
        views = {cam.name: self._camera_view.get(cam.name) for cam in self.rig.cameras}
        with self._unlocked():
            for cam in self.rig.cameras:
                if info_problems[cam.name]:
                    reasons.append(info_problems[cam.name])
                    continue
                view = views[cam.name]
                size, fx = (view[:2], view[2]) if view else (None, None)
                try:
                    images[cam.name] = fit_to_camera(self._decode_image(s.items[cam.name].payload, size), cam, fx)
                except Exception as e:
                    reasons.append(f"camera {cam.name}: {e}")
        odom = s.items[ODOM].payload
        ego = None
        if isinstance(odom, _Invalid):
            reasons.append(odom.reason)
        else:
            ego = propagate(odom, key)
        answer_stamp = now if stale else key
        if reasons:
            return self._fallback(answer_stamp, reasons, ego if not stale else None, key, t0, planner)
        spec = planner.spec
        try:
            obs = Observation(
                images=images,
                ego=ego,
                stamp_ns=key,
                command=self._command,
                instruction=self._instruction,
                ego_history=self._history(ego, spec.dt, self._history_len()),
                past_images=self._past_images(key, images, planner.past_frame_s),
            )
            with self._unlocked():
                t_plan = self._wall()
                result = planner.plan(obs, cfg.budget_ms)
                planner_ms = (self._wall() - t_plan) * 1e3
            problem = _result_problem(result, spec)
        except Exception as e:
            problem = f"planner: {type(e).__name__}: {e}"
        if problem:
            return self._fallback(key, [problem], ego, key, t0, planner)
        self._held = _HeldPlan(ego.pose, result.trajectory.poses, spec.times, key)
        self.counts["plans"] += 1
        self.counts[result.mode] += 1
        if result.moe.get("load") is not None:
            self._moe_load = result.moe["load"]
        out = CycleOutput(result, key, ego.pose, "plan", input_stamp_ns=key, planner_ms=planner_ms)
        return self._finish(out, t0)

    def _fallback(
        self,
        stamp: int,
        reasons: list[str],
        ego: EgoState | None,
        input_stamp: int | None,
        t0: float,
        planner: Planner,
    ) -> CycleOutput:
        cfg, spec, held = self._config, planner.spec, self._held
        if held is not None and 0.0 <= held.age(stamp) <= cfg.fallback_hold_s:
            at = held.age(stamp)
            pose = propagate(ego, stamp).pose if ego is not None else resample(held.poses, held.times, [at])[0]
            poses = continue_plan(held.poses, held.times, at, spec, pose)
            kind, origin = "hold", pose
        else:
            base = ego if ego is not None else self._last_valid_ego
            if base is not None:
                poses = comfortable_stop(base.speed, base.yaw_rate, spec, cfg.fallback_decel)
                origin = base.pose
            else:
                poses, origin = np.zeros((spec.num_poses, 3)), None
            kind = "stop"
        result = PlanResult(
            trajectory=Trajectory(poses, spec, "base_link", stamp),
            candidates=np.zeros((0, spec.num_poses, 3)),
            mode="fallback",
            info={"fallback": kind, "reasons": list(reasons)},
        )
        self.counts[f"fallback_{kind}"] += 1
        for r in reasons:
            self.reason_counts[r.split(":", 1)[0]] += 1
        return self._finish(CycleOutput(result, stamp, origin, kind, tuple(reasons), input_stamp_ns=input_stamp), t0)

    def _finish(self, out: CycleOutput, t0: float) -> CycleOutput:
        out.processing_ms = (self._wall() - t0) * 1e3
        out.deadline_missed = out.processing_ms > self._config.deadline_ms
        self._processing.append(out.processing_ms)
        if out.deadline_missed:
            self.counts["deadline_misses"] += 1
        return out

    def _remember(self, out: CycleOutput, now: int) -> CycleOutput:
        self._last_output = out
        if out.kind != "plan":
            self._last_fallback_time = now
        return out

    # ---- helpers -------------------------------------------------------------------------------

    def _missing_reasons(self, now: int, cfg: LoopConfig) -> list[str]:
        reasons = []
        for stream in self.sync.streams:
            label = "odometry" if stream == ODOM else f"camera {stream}"
            last = self.sync.last(stream)
            if last is None:
                reasons.append(f"missing: {label}: no message received")
            elif _sec(now, last.stamp_ns) > cfg.input_timeout_s:
                reasons.append(f"stale: {label}: newest message is {_sec(now, last.stamp_ns):.3f} s old")
        if not reasons:
            stamps = ", ".join(f"{s} {ns_to_seconds(self.sync.last(s).stamp_ns):.3f}" for s in self.sync.streams)
            reasons.append(f"unsynchronised: no input set within sync_slop_s {cfg.sync_slop_s} s ({stamps})")
        return reasons

    def _with_acceleration(self, ego: EgoState) -> EgoState:
        """``ego`` with acceleration from differencing world-frame velocities over :data:`ACCEL_WINDOW_S`
        (scalar arithmetic: this runs for every odometry message)."""
        prev, best = None, math.inf
        for e in reversed(self._odom):
            age = _sec(ego.stamp_ns, e.stamp_ns)
            if age > 2 * ACCEL_WINDOW_S:
                break
            if age >= 0.5 * ACCEL_WINDOW_S and abs(age - ACCEL_WINDOW_S) < best:
                prev, best = e, abs(age - ACCEL_WINDOW_S)
        if prev is None:
            return ego
        yaw, yaw_prev = float(ego.pose[2]), float(prev.pose[2])
        (vx, vy), (px, py) = (float(v) for v in ego.velocity), (float(v) for v in prev.velocity)
        c, s, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(yaw_prev), math.sin(yaw_prev)
        dt = _sec(ego.stamp_ns, prev.stamp_ns)
        ax = ((c * vx - s * vy) - (cp * px - sp * py)) / dt
        ay = ((s * vx + c * vy) - (sp * px + cp * py)) / dt
        ego.acceleration = np.array([c * ax + s * ay, -s * ax + c * ay])
        return ego

    def _odometry_break(self, prev: EgoState, ego: EgoState) -> bool:
        """``ego`` does not continue ``prev``: a gap over ``input_timeout_s`` or a jump (see :data:`ODOM_JUMP_M`)."""
        dt = _sec(ego.stamp_ns, prev.stamp_ns)
        if dt > self._config.input_timeout_s:
            return True
        speed = max(math.hypot(*prev.velocity[:2]), math.hypot(*ego.velocity[:2]))
        return math.hypot(ego.pose[0] - prev.pose[0], ego.pose[1] - prev.pose[1]) > speed * dt + ODOM_JUMP_M

    def _history(self, ego: EgoState, dt: float, length: int) -> np.ndarray:
        """(length, 3) past poses relative to ``ego`` every ``dt`` s, oldest first; clamped at the oldest
        odometry kept (as the dataset clamps at an episode's start); zeros without any past odometry.

        geometry.resample and geometry.relative in scalars over the few states needed (the planning
        thread runs this right before the plan, where numpy's per-call overhead on so few states would
        add to every cycle)."""
        if length == 0:
            return np.zeros((0, 3))
        oldest = -dt * length
        states: list[EgoState] = []
        for e in reversed(self._odom):
            if e.stamp_ns < ego.stamp_ns:
                states.append(e)
                if _sec(e.stamp_ns, ego.stamp_ns) <= oldest:
                    break
        if not states:
            return np.zeros((length, 3))
        states.reverse()
        states.append(ego)
        stamps = [_sec(e.stamp_ns, ego.stamp_ns) for e in states]
        poses = [e.pose.tolist() for e in states]
        x0, y0, yaw0 = poses[-1]
        c, s = math.cos(yaw0), math.sin(yaw0)
        rows = []
        for j in range(length):
            t = -dt * (length - j)
            i = bisect.bisect_right(stamps, t) - 1
            if i < 0:
                x, y, yaw = poses[0]
            else:
                (ax, ay, ayaw), (bx, by, byaw) = poses[i], poses[i + 1]
                w = (t - stamps[i]) / (stamps[i + 1] - stamps[i])
                x, y, yaw = ax + w * (bx - ax), ay + w * (by - ay), ayaw + w * wrap_angle(byaw - ayaw)
            dx, dy = x - x0, y - y0
            rows.append((c * dx + s * dy, -s * dx + c * dy, wrap_angle(yaw - yaw0)))
        return np.array(rows)

    def _past_images(self, key: int, images: dict, age_s: float) -> dict | None:
        """The camera set of an earlier cycle about ``age_s`` before this one (by the training data's
        rule, :func:`~wamdiff_ros.stamps.past_frame_index`; this one's own until the loop has run that
        long), after remembering this set; None when the planner takes no past frame. Runs under the
        loop's lock, as the whole cycle's bookkeeping does."""
        if not age_s:
            self._frames.clear()
            return None
        self._frames.append((key, images))
        horizon = key - seconds_to_ns(age_s + PAST_FRAME_MARGIN_S)
        while len(self._frames) > 1 and self._frames[1][0] <= horizon:
            self._frames.popleft()
        return self._frames[past_frame_index([t for t, _ in self._frames], age_s)][1]

    def _history_len(self) -> int:
        return self._planner.history if self._planner is not None else 0

    def _spec_dt(self) -> float:
        return self._planner.spec.dt if self._planner is not None else 0.5

    def _on_time_jump(self) -> None:
        with self._lock:
            self._odom.clear()
            self._frames.clear()
            self._held = None
            self._last_set_stamp = None
            self._last_fallback_time = None
            self._started = None
            self.counts["time_jumps"] += 1

    def _check_clock(self, now: int) -> None:
        """The node clock went back: drop what was buffered before the jump, unless the inputs jumped back
        first (then the buffers hold only inputs from after it, such as a looped bag's first frame)."""
        marks = [self._last_fallback_time, self._started]
        if any(m is not None and now < m - CLOCK_BACK_NS for m in marks):
            if self._input_jump_wall is None:
                self.sync.clear()
            self._on_time_jump()
            self._input_jump_wall = None

    # ---- reporting -----------------------------------------------------------------------------

    def health(self, now: int) -> Health:
        """Status since the previous call, plus totals, for /diagnostics."""
        with self._lock:
            planner = self._planner
            c, prev = Counter(self.counts), self._reported
            self._reported = c
            new_misses = c["deadline_misses"] - prev["deadline_misses"]
            new_fallbacks = sum(c[f"fallback_{k}"] - prev[f"fallback_{k}"] for k in ("hold", "stop"))
            values: dict[str, str] = {
                "model_loaded": str(planner is not None).lower(),
                "family": planner.family if planner is not None else "",
                "plans": str(c["plans"]),
                "fallbacks_hold": str(c["fallback_hold"]),
                "fallbacks_stop": str(c["fallback_stop"]),
                "deadline_misses": str(c["deadline_misses"]),
                "deadline_ms": f"{self._config.deadline_ms:g}",
                "fast": str(c["fast"]),
                "slow": str(c["slow"]),
                "slow_rate": f"{c['slow'] / c['plans']:.3f}" if c["plans"] else "0.000",
                "sync_resets": str(self.sync.resets),
                "time_jumps": str(c["time_jumps"]),
                "odometry_breaks": str(c["odometry_breaks"]),
                "command": self._command,
            }
            if self._processing:
                p = np.asarray(self._processing)
                values["processing_ms_p50"] = f"{np.percentile(p, 50):.2f}"
                values["processing_ms_max"] = f"{p.max():.2f}"
            if self._moe_load is not None:
                load = np.asarray(self._moe_load, np.float64).reshape(-1)
                values["moe_load"] = "[" + ", ".join(f"{v:.3f}" for v in load) + "]"
            for stream in self.sync.streams:
                last = self.sync.last(stream)
                key = "age_odom_s" if stream == ODOM else f"age_camera_{stream}_s"
                values[key] = f"{_sec(now, last.stamp_ns):.3f}" if last is not None else "never"
            for cam, problem in self._camera_info.items():
                values[f"camera_info_{cam}"] = problem or "ok"
            for code, n in sorted(self.reason_counts.items()):
                values[f"fallback_reason_{code}"] = str(n)
            last = self._last_output
            if last is not None and last.reasons:
                values["last_fallback_reasons"] = "; ".join(last.reasons)
            warnings = []
            if new_fallbacks and last is not None and last.kind != "plan":
                warnings.append(f"fallback ({last.kind}): {'; '.join(last.reasons)}")
            elif new_fallbacks:
                warnings.append(f"{new_fallbacks} fallback(s) since the last report")
            if new_misses:
                warnings.append(f"{new_misses} deadline miss(es) over {self._config.deadline_ms:g} ms")
            warnings += [p for p in self._camera_info.values() if p]
            if self._bad_command:
                warnings.append(self._bad_command)
            if planner is None:
                return Health(LEVEL_ERROR, "model not loaded", values)
            if warnings:
                return Health(LEVEL_WARN, " | ".join(warnings), values)
            return Health(LEVEL_OK, "planning" if c["plans"] else "waiting for inputs", values)


def _sec(later_ns: int, earlier_ns: int) -> float:
    """``later_ns - earlier_ns`` [s] (the difference is exact before it becomes a float)."""
    return ns_to_seconds(later_ns - earlier_ns)


def _result_problem(result: Any, spec) -> str | None:
    if not isinstance(result, PlanResult):
        return f"planner: expected a PlanResult, got {type(result).__name__}"
    poses = result.trajectory.poses
    if poses.shape != (spec.num_poses, 3):
        return f"planner: expected a ({spec.num_poses}, 3) trajectory, got {poses.shape}"
    if not np.isfinite(poses).all():
        return "planner: returned non-finite poses"
    return None
