"""Safe trajectories when no fresh plan can be made: hold the last plan, or stop comfortably."""

from __future__ import annotations

import numpy as np

from wamdiff_ros.geometry import compose, prepend_origin, relative, resample, wrap_angle
from wamdiff_ros.planning.motion import se2_exp, se2_log
from wamdiff_ros.stamps import ns_to_seconds
from wamdiff_ros.types import EgoState, Trajectory, TrajectorySpec

MAX_STOP_CURVATURE = 0.2
"""Largest path curvature the stop keeps from the current yaw rate [1/m] (a 5 m radius)."""

MIN_TURNING_SPEED = 1.0
"""Below this speed [m/s] the yaw rate is not trusted for curvature and the stop goes straight."""


def continue_plan(
    plan_odom: np.ndarray, plan_times: np.ndarray, now: float, spec: TrajectorySpec, current_pose: np.ndarray
) -> np.ndarray:
    """The last plan re-expressed in the current base_link on a grid starting at ``now``.

    Args:
        plan_odom: (N, 3) poses of the last plan in the odometry frame, the ego pose at plan time first.
        plan_times: (N,) absolute times of those poses [s], strictly increasing.
        now: time the returned trajectory starts from [s].
        spec: grid of the returned trajectory (poses at ``now + spec.times``).
        current_pose: (3,) ego pose at ``now`` in the odometry frame.

    Returns:
        (spec.num_poses, 3) poses in the base_link at ``now``. Beyond the plan's horizon the last
        segment's velocity (and yaw rate) is extrapolated.
    """
    plan_odom = np.asarray(plan_odom, np.float64)
    plan_times = np.asarray(plan_times, np.float64)
    if plan_odom.ndim != 2 or plan_odom.shape[1] != 3 or len(plan_odom) < 2 or len(plan_times) != len(plan_odom):
        raise ValueError(
            f"continue_plan: expected (N>=2, 3) poses and N times, got {plan_odom.shape} and {plan_times.shape}"
        )
    query = now + spec.times
    poses = resample(plan_odom, plan_times, query)
    beyond = query > plan_times[-1]
    if beyond.any():
        seg_dt = plan_times[-1] - plan_times[-2]
        twist = se2_log(relative(plan_odom[-2], plan_odom[-1])) / seg_dt
        poses[beyond] = compose(plan_odom[-1], se2_exp((query[beyond] - plan_times[-1])[:, None] * twist))
    return relative(np.asarray(current_pose, np.float64), poses)


def comfortable_stop(speed: float, yaw_rate: float, spec: TrajectorySpec, decel: float) -> np.ndarray:
    """A stop at constant deceleration ``decel`` [m/s²] from ``speed`` [m/s], in base_link.

    The path keeps the current curvature (yaw rate / speed, limited to :data:`MAX_STOP_CURVATURE`) so a
    vehicle in a bend does not leave its lane while stopping. Returns (spec.num_poses, 3).
    """
    if not decel > 0:
        raise ValueError(f"comfortable_stop.decel: expected > 0 m/s², got {decel}")
    v = max(float(speed), 0.0) if np.isfinite(speed) else 0.0
    t = spec.times
    t_stop = v / decel
    s = np.where(t < t_stop, v * t - 0.5 * decel * t**2, 0.5 * v * t_stop)
    kappa = 0.0
    if v >= MIN_TURNING_SPEED and np.isfinite(yaw_rate):
        kappa = float(np.clip(yaw_rate / v, -MAX_STOP_CURVATURE, MAX_STOP_CURVATURE))
    return _arc_from_length(s, kappa)


class HeldPlan:
    """A simulator bridge's last plan, in the odometry frame with its absolute times [s]: :meth:`at`
    re-expresses it at a later pose (:func:`continue_plan`), a comfortable stop at ``stop_decel``
    [m/s²] once it has run out or when there is none."""

    def __init__(self, stop_decel: float):
        self.stop_decel = float(stop_decel)
        self._held: tuple[np.ndarray, np.ndarray] | None = None

    def hold(self, plan: Trajectory, ego: EgoState) -> None:
        """Keep ``plan`` (base_link of ``ego`` at ``plan.stamp``)."""
        times = plan.stamp + np.concatenate([[0.0], plan.spec.times])
        self._held = (compose(ego.pose, prepend_origin(plan.poses)), times)

    def clear(self) -> None:
        self._held = None

    def at(self, t_ns: int, ego: EgoState) -> Trajectory:
        """The held plan from ``t_ns`` [ns] on in base_link of ``ego``; a comfortable stop once it has run out."""
        t = ns_to_seconds(t_ns)
        if self._held is not None and t <= self._held[1][-1]:
            poses, times = self._held
            spec = TrajectorySpec(len(times) - 1, float(times[1] - times[0]))
            return Trajectory(continue_plan(poses, times, t, spec, ego.pose), spec, stamp_ns=t_ns)
        spec = TrajectorySpec()
        return Trajectory(comfortable_stop(ego.speed, ego.yaw_rate, spec, self.stop_decel), spec, stamp_ns=t_ns)


def _arc_from_length(s: np.ndarray, kappa: float) -> np.ndarray:
    """Poses (N, 3) at arc lengths ``s`` along a circle of curvature ``kappa`` starting at the origin."""
    if abs(kappa) < 1e-9:
        return np.stack([s, np.zeros_like(s), np.zeros_like(s)], -1)
    yaw = kappa * s
    return np.stack([np.sin(yaw) / kappa, (1 - np.cos(yaw)) / kappa, wrap_angle(yaw)], -1)
