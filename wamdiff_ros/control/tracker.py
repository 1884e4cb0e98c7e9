"""Trajectory tracker: pure pursuit on the planned path + PID on the planned speed profile.

``Tracker.track(plan, ego)`` turns a plan in base_link into ``(accel [m/s²], steer [rad, + left])``
clipped to the actuator ranges; the embedded world maps those onto highway-env's normalised action.
The speed reference is the plan's speed a short preview ahead, with the plan's own acceleration as
feed-forward; a plan that stands still over the next ``hold_window`` s is held with a gentle brake. A
plan that starts from standstill gently (a few tenths of a metre in its first second) is a start, not
a stop: with the preview speed alone it read as one, the vehicle stayed put, and the planner, seeing
it still stopped, kept planning the same gentle start (a closed-loop deadlock at junctions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.control.pid import PID, PIDGains
from wamdiff_ros.control.pure_pursuit import PurePursuitParams, pursuit_curvature, steer_for_curvature
from wamdiff_ros.types import EgoState, Trajectory


@dataclass(frozen=True)
class TrackerParams:
    """Attributes:
    pursuit: pure-pursuit parameters.
    speed_pid: gains on the speed error.
    accel_range: (min, max) acceleration command [m/s²].
    max_steer: steering limit [rad].
    preview: time ahead at which the plan's speed is the reference [s].
    feedforward: weight of the plan's acceleration added to the command [-].
    hold_brake: braking while the plan stands still and the ego is (nearly) stopped [m/s²].
    hold_window: the plan stands still when its speed stays below :data:`STANDSTILL_SPEED` for this
        long [s].
    """

    pursuit: PurePursuitParams = field(default_factory=PurePursuitParams)
    speed_pid: PIDGains = field(default_factory=PIDGains)
    accel_range: tuple[float, float] = (-6.0, 4.0)
    max_steer: float = np.pi / 4
    preview: float = 0.3
    feedforward: float = 1.0
    hold_brake: float = -2.0
    hold_window: float = 1.0


STANDSTILL_SPEED = 0.3
"""Plan speeds below this are standing still [m/s] (and the ego below 0.5 m/s is nearly stopped)."""


def speed_profile(plan: Trajectory, v0: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (T+1,) and speeds (T+1,) of a plan: ``v0`` now, then segment speeds at segment midpoints."""
    pts = np.concatenate([np.zeros((1, 2)), plan.poses[:, :2]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) / plan.spec.dt
    t_mid = plan.spec.times - plan.spec.dt / 2
    return np.concatenate([[0.0], t_mid]), np.concatenate([[v0], seg])


class Tracker:
    """Stateful (PID integral) tracker; one per vehicle, :meth:`reset` per episode."""

    def __init__(self, params: TrackerParams | None = None, dt: float = 0.1):
        self.params = params or TrackerParams()
        self.dt = float(dt)
        self.pid = PID(self.params.speed_pid)

    def reset(self) -> None:
        self.pid.reset()

    def track(self, plan: Trajectory, ego: EgoState) -> tuple[float, float]:
        """Acceleration and steering that follow ``plan`` (base_link of ``ego``) for the next tick."""
        if plan.frame != "base_link":
            raise ValueError(f"Tracker.track.plan: expected a base_link trajectory, got frame {plan.frame!r}")
        if not (plan.is_finite() and ego.is_finite()):
            raise ValueError("Tracker.track: plan and ego state must be finite")
        p = self.params
        v = ego.speed
        path = np.concatenate([np.zeros((1, 2)), plan.poses[:, :2]])
        kappa, _ = pursuit_curvature(path, v, p.pursuit)
        steer = float(np.clip(steer_for_curvature(kappa, p.pursuit), -p.max_steer, p.max_steer))

        t, speeds = speed_profile(plan, v)
        t_ref = min(p.preview, t[-1])
        v_ref = float(np.interp(t_ref, t[1:], speeds[1:]))
        a_plan = float(np.gradient(speeds[1:], t[1:])[0]) if len(t) > 2 else 0.0
        near = t[1:] <= max(p.hold_window, t[1])
        if v < 0.5 and float(speeds[1:][near].max()) < STANDSTILL_SPEED:
            self.pid.reset()
            return p.hold_brake if v > 0.05 else 0.0, steer
        accel = self.pid.step(v_ref - v, self.dt) + p.feedforward * a_plan
        return float(np.clip(accel, *p.accel_range)), steer
