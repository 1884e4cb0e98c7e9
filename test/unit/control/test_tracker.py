"""Pure pursuit + PID tracker: steering sign (REP-103), speed-error sign, limits, bad input."""

import numpy as np
import pytest

from wamdiff_ros.control.pid import PID, PIDGains
from wamdiff_ros.control.pure_pursuit import PurePursuitParams, pursuit_curvature, steer_for_curvature
from wamdiff_ros.control.tracker import Tracker, TrackerParams, speed_profile
from wamdiff_ros.types import EgoState, Trajectory, TrajectorySpec

SPEC = TrajectorySpec()


def straight_plan(speed: float) -> Trajectory:
    x = speed * SPEC.times
    return Trajectory(np.stack([x, 0 * x, 0 * x], 1), SPEC)


def arc_plan(speed: float, radius: float) -> Trajectory:
    """Constant-speed arc, turning left for radius > 0 and right for radius < 0."""
    phi = speed * SPEC.times / radius
    return Trajectory(np.stack([radius * np.sin(phi), radius * (1 - np.cos(phi)), phi], 1), SPEC)


def ego(speed: float) -> EgoState:
    return EgoState(pose=np.zeros(3), velocity=np.array([speed, 0.0]))


def test_straight_plan_at_constant_speed_gives_no_steer_and_little_accel():
    accel, steer = Tracker().track(straight_plan(20.0), ego(20.0))
    assert steer == pytest.approx(0.0, abs=1e-9)
    assert abs(accel) < 0.2


@pytest.mark.parametrize("radius", [30.0, -30.0])
def test_curving_plan_steers_toward_its_side(radius):
    _, steer = Tracker().track(arc_plan(10.0, radius), ego(10.0))
    assert np.sign(steer) == np.sign(radius) and abs(steer) > 0.05


def test_steer_matches_the_arc_curvature():
    params = PurePursuitParams(steer_model="rear_axle", wheelbase=3.0)
    r = 40.0
    phi = np.linspace(0, 1.5, 200)
    path = np.stack([r * np.sin(phi), r * (1 - np.cos(phi))], 1)
    kappa, target = pursuit_curvature(path, 10.0, params)
    assert kappa == pytest.approx(1 / r, rel=0.02)
    assert np.linalg.norm(target) == pytest.approx(params.min_lookahead + params.lookahead_time * 10.0, rel=0.02)
    assert steer_for_curvature(1 / r, params) == pytest.approx(np.arctan(3.0 / r))
    mid = PurePursuitParams(steer_model="mid_cg", wheelbase=5.0)
    beta = np.arctan(0.5 * np.tan(steer_for_curvature(1 / r, mid)))
    assert np.sin(beta) / 2.5 == pytest.approx(1 / r)  # highway-env: yaw rate / speed = sin β / (L/2)


@pytest.mark.parametrize(("plan_speed", "ego_speed", "sign"), [(20.0, 15.0, 1), (10.0, 15.0, -1)])
def test_speed_error_sign_gives_accel_sign(plan_speed, ego_speed, sign):
    accel, _ = Tracker().track(straight_plan(plan_speed), ego(ego_speed))
    assert np.sign(accel) == sign


def test_commands_are_clipped_to_the_actuator_ranges():
    p = TrackerParams()
    accel, steer = Tracker(p).track(arc_plan(2.0, 1.5), ego(30.0))
    assert p.accel_range[0] <= accel <= p.accel_range[1] and abs(steer) <= p.max_steer
    assert accel == pytest.approx(p.accel_range[0])


def test_stopped_plan_holds_the_vehicle():
    t = Tracker()
    stop = Trajectory(np.zeros((SPEC.num_poses, 3)), SPEC)
    assert t.track(stop, ego(0.0))[0] == 0.0
    assert t.track(stop, ego(0.3))[0] < 0.0


def test_a_gentle_start_from_standstill_is_a_start_not_a_hold():
    x = 0.5 * 0.6 * SPEC.times**2  # 0.6 m/s² from rest: 0.08 m at 0.5 s, 0.3 m at 1 s
    start = Trajectory(np.stack([x, 0 * x, 0 * x], 1), SPEC)
    accel, _ = Tracker().track(start, ego(0.0))
    assert accel > 0.3
    late = np.where(SPEC.times <= 1.0, 0.0, 2.0 * (SPEC.times - 1.0))  # stands for a second, then moves
    assert Tracker().track(Trajectory(np.stack([late, 0 * late, 0 * late], 1), SPEC), ego(0.0))[0] == 0.0


def test_speed_profile_and_bad_input():
    times, speeds = speed_profile(straight_plan(8.0), 5.0)
    assert times[0] == 0 and speeds[0] == 5.0 and np.allclose(speeds[1:], 8.0)
    with pytest.raises(ValueError, match="base_link"):
        Tracker().track(Trajectory(straight_plan(5.0).poses, SPEC, frame="map"), ego(5.0))
    with pytest.raises(ValueError, match="finite"):
        Tracker().track(straight_plan(5.0), EgoState(pose=np.array([np.nan, 0, 0])))
    with pytest.raises(ValueError, match="steer_model"):
        PurePursuitParams(steer_model="ackermann")


def test_pid_integrates_and_clamps():
    pid = PID(PIDGains(kp=1.0, ki=1.0, kd=0.0, integral_limit=0.5))
    out = [pid.step(1.0, 0.1) for _ in range(20)]
    assert out[-1] == pytest.approx(1.5) and out[0] == pytest.approx(1.1)
    pid.reset()
    assert pid.step(0.0, 0.1) == 0.0
    with pytest.raises(ValueError, match="dt"):
        pid.step(1.0, 0.0)
