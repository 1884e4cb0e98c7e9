"""The planning cycle without ROS: plans from good inputs, a fallback with a reason for every bad one."""

import cv2
import numpy as np
import pytest

from wamdiff_ros.data.images import decode_compressed, encode_compressed
from wamdiff_ros.geometry import compose, relative, resample, wrap_angle
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.planning import LoopConfig, PlanningLoop, comfortable_stop
from wamdiff_ros.planning.loop import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN
from wamdiff_ros.rig import CameraSpec, Rig
from wamdiff_ros.types import EgoState, PlanResult, Trajectory, TrajectorySpec

RIG = Rig(
    "test",
    (
        CameraSpec("front", 32, 16, 90.0, (1.5, 0.0, 1.6)),
        CameraSpec("left", 32, 16, 90.0, (1.4, 0.4, 1.6), (0.0, 0.0, 1.0)),
    ),
)
SPEC = TrajectorySpec(8, 0.5)
JPEG = encode_compressed(np.full((16, 32, 3), 120, np.uint8))


def decode_image(payload, size):
    return decode_compressed(payload, "jpeg", size)


def decode_odom(payload):
    return payload


class Recording(ConstantVelocityPlanner):
    """Constant velocity, remembering the observations it saw."""

    def __init__(self, **kw):
        super().__init__(RIG, SPEC, **kw)
        self.seen = []

    def plan(self, obs, budget_ms=None):
        self.seen.append(obs)
        return super().plan(obs, budget_ms)


def make(planner=None, **cfg):
    planner = planner or Recording()
    return PlanningLoop(planner, RIG, LoopConfig(**cfg), decode_image, decode_odom), planner


def ns(t: float) -> int:
    """Seconds -> the integer nanoseconds the loop takes."""
    return round(t * 1e9)


def ego(t, x=0.0, y=0.0, yaw=0.0, v=10.0, w=0.0):
    return EgoState(pose=[x, y, yaw], velocity=[v, 0.0], yaw_rate=w, stamp_ns=ns(t))


def feed(loop, t, image=JPEG, odom=None, cameras=("front", "left")):
    for c in cameras:
        loop.on_image(c, ns(t), image)
    loop.on_odometry(ns(t), odom if odom is not None else ego(t, x=10.0 * t))


def test_inputs_say_when_a_new_complete_set_is_ready():
    loop, _ = make()
    assert loop.on_image("front", ns(1.0), JPEG) is False
    assert loop.on_image("left", ns(1.0), JPEG) is False
    assert loop.on_odometry(ns(1.0), ego(1.0)) is True
    assert loop.step(ns(1.01)).kind == "plan"
    assert loop.on_image("front", ns(1.0), JPEG) is False  # the same set again: already planned
    assert loop.on_image("front", ns(1.1), JPEG) is False
    assert loop.on_image("left", ns(1.1), JPEG) is False
    assert loop.on_odometry(ns(1.1), ego(1.1, x=1.0)) is True
    assert loop.on_image("front", ns(0.5), JPEG) is True  # time went backwards: the loop must reset


def test_good_inputs_reach_the_planner_and_give_a_plan():
    loop, planner = make()
    loop.on_camera_info("front", 32, 16, RIG.camera("front").K.reshape(-1))
    feed(loop, 1.0)
    out = loop.step(ns(1.01))
    assert out is not None and out.kind == "plan" and out.reasons == ()
    assert out.stamp_ns == ns(1.0) and out.input_stamp_ns == ns(1.0)
    np.testing.assert_allclose(out.origin, [10.0, 0.0, 0.0])
    np.testing.assert_allclose(out.result.trajectory.poses[:, 0], 10.0 * SPEC.times)
    obs = planner.seen[-1]
    assert set(obs.images) == {"front", "left"} and obs.images["front"].shape == (16, 32, 3)
    assert loop.step(ns(1.02)) is None  # nothing new: no re-plan of the same set


def test_faster_inputs_are_decimated_by_stamp_and_newest_set_wins():
    loop, planner = make(plan_rate_hz=10.0, sync_slop_s=0.01)
    feed(loop, 1.0)
    assert loop.step(ns(1.0)).kind == "plan"
    feed(loop, 1.03)
    feed(loop, 1.06)
    assert loop.step(ns(1.06)) is None  # stamps closer than 1 / plan_rate_hz: not planned
    assert loop.step(ns(1.2)) is None  # not even later: a newer set is coming
    feed(loop, 1.08)  # within the jitter tolerance (RATE_TOLERANCE of a period)
    feed(loop, 1.12)
    out = loop.step(ns(1.12))
    assert out.kind == "plan" and out.input_stamp_ns == ns(1.12)  # the newest set wins
    assert [o.stamp for o in planner.seen] == [1.0, pytest.approx(1.12)]


def test_ego_is_propagated_to_the_image_stamp_and_acceleration_estimated():
    loop, planner = make(sync_slop_s=0.05)
    for k in range(10):  # accelerating at 2 m/s² along x
        t = 0.5 + 0.05 * k
        loop.on_odometry(ns(t), ego(t, x=0.0, v=5.0 + 2.0 * (t - 0.5)))
    t_img = 0.5 + 0.05 * 9 + 0.02
    for c in ("front", "left"):
        loop.on_image(c, ns(t_img), JPEG)
    out = loop.step(ns(t_img))
    assert out.kind == "plan"
    obs = planner.seen[-1]
    v = 5.0 + 2.0 * 0.45
    assert obs.ego.stamp == pytest.approx(t_img)
    assert obs.ego.pose[0] == pytest.approx(v * 0.02)
    assert obs.ego.acceleration[0] == pytest.approx(2.0, rel=1e-6)


def test_ego_history_is_relative_and_clamped_like_the_dataset():
    planner = Recording()
    planner.history = 3
    loop, _ = make(planner)
    for k in range(30):
        t = 0.1 * k
        loop.on_odometry(ns(t), ego(t, x=10.0 * t))
    for c in ("front", "left"):
        loop.on_image(c, ns(2.9), JPEG)
    assert loop.step(ns(2.9)).kind == "plan"
    np.testing.assert_allclose(planner.seen[-1].ego_history[:, 0], [-15.0, -10.0, -5.0], atol=1e-9)


def test_ego_history_interpolates_as_geometry_resample_across_the_yaw_wrap():
    planner = Recording()
    planner.history = 6
    loop, _ = make(planner)
    rng = np.random.default_rng(3)
    stamps = np.cumsum(rng.uniform(0.03, 0.12, 40))
    yaws = np.pi - 0.3 + 0.02 * np.arange(40)  # crosses +π → −π
    poses = np.stack([np.cumsum(rng.uniform(0.2, 0.5, 40)), np.cumsum(rng.normal(0, 0.02, 40)), yaws], 1)
    for t, p in zip(stamps, poses):
        loop.on_odometry(ns(t), EgoState(pose=p, velocity=[4.0, 0.0], stamp_ns=ns(t)))
    t_now = stamps[-1]
    for c in ("front", "left"):
        loop.on_image(c, ns(t_now), JPEG)
    assert loop.step(ns(t_now)).kind == "plan"
    kept = stamps >= t_now - (6 * SPEC.dt + 1.4) - 1e-9  # the odometry horizon the loop keeps
    expected = relative(poses[-1], resample(poses[kept], stamps[kept], t_now - SPEC.dt * np.arange(6, 0, -1)))
    got = planner.seen[-1].ego_history
    np.testing.assert_allclose(got[:, :2], expected[:, :2], atol=1e-9)
    np.testing.assert_allclose(wrap_angle(got[:, 2] - expected[:, 2]), 0.0, atol=1e-9)


@pytest.mark.parametrize(
    "case",
    ["gap", "teleport"],  # the next simulator episode 1 s later elsewhere; a relocalisation mid-stream
)
def test_a_break_in_the_odometry_drops_the_ego_history_and_the_held_plan(case):
    planner = Recording()
    planner.history = 3
    loop, _ = make(planner, sync_slop_s=0.01)
    for k in range(29):  # 30 m/s: 3 m between messages is motion, not a break
        t = 0.1 * k
        loop.on_odometry(ns(t), ego(t, x=30.0 * t, v=30.0))
    feed(loop, 2.9, odom=ego(2.9, x=87.0, v=30.0))
    assert loop.step(ns(2.9)).kind == "plan"
    np.testing.assert_allclose(planner.seen[-1].ego_history[:, 0], [-45.0, -30.0, -15.0], atol=1e-9)
    t0 = 3.9 if case == "gap" else 3.0
    for k in range(2):
        t = t0 + 0.1 * k
        loop.on_odometry(ns(t), ego(t, x=500.0 + 10.0 * (t - t0), y=-200.0, yaw=1.0))
    t = t0 + 0.2
    feed(loop, t, odom=ego(t, x=502.0, y=-200.0, yaw=1.0))
    assert loop.step(ns(t)).kind == "plan"
    history = planner.seen[-1].ego_history
    assert np.abs(history[:, :2]).max() < 3.0, history  # only poses since the break (clamped): none from before
    assert loop.health(ns(t)).values["odometry_breaks"] == "1"
    loop.on_image("front", ns(t + 0.1), JPEG[:20])  # a bad frame now falls back to a stop, not the old plan
    loop.on_image("left", ns(t + 0.1), JPEG)
    loop.on_odometry(ns(t + 0.1), ego(t + 0.1, x=503.0, y=-200.0, yaw=1.0))
    assert loop.step(ns(t + 0.1)).kind == "hold"  # the plan made after the break is held
    assert loop.counts["odometry_breaks"] == 1


@pytest.mark.parametrize(
    "case, expect",
    [
        ("corrupt_jpeg", "camera front"),
        ("png_in_jpeg", "camera front"),
        ("wrong_size", "expected 32×16 px (rig), got 32×20; aspect ratio differs"),
        ("nan_odometry", "odometry: non-finite"),
        ("bad_odometry", "odometry: boom"),
        ("camera_info_size", "camera_info left: aspect ratio differs: 64×16 px (4.000), the rig's 32×16 px (2.000)"),
        ("camera_info_focal", "camera_info left: field of view differs: 53.1° (focal length 32.0 px at 32 px"),
        ("stale", "stale"),
        ("future", "clock"),
    ],
)
def test_bad_inputs_never_reach_the_planner(case, expect):
    loop, planner = make()
    image, odom, now = JPEG, None, 1.0
    if case == "corrupt_jpeg":
        image = JPEG[:20] + b"\x00" * 50
    elif case == "png_in_jpeg":
        image = encode_compressed(np.zeros((16, 32, 3), np.uint8), "png")

        def decode(payload, size):  # message says jpeg, data is png
            return decode_compressed(payload, "jpeg", size)

        loop._decode_image = decode
    elif case == "wrong_size":
        image = encode_compressed(np.zeros((20, 32, 3), np.uint8))
    elif case == "nan_odometry":
        odom = ego(1.0, x=float("nan"))
    elif case == "bad_odometry":

        def boom(_):
            raise ValueError("boom")

        loop._decode_odom = boom
    elif case == "camera_info_size":
        loop.on_camera_info("left", 64, 16, RIG.camera("left").K.reshape(-1))
    elif case == "camera_info_focal":
        loop.on_camera_info("left", 32, 16, (RIG.camera("left").K * 2).reshape(-1))
    elif case == "stale":
        now = 2.0
    elif case == "future":
        now = 0.2
    feed(loop, 1.0, image=image, odom=odom)
    out = loop.step(ns(now))
    assert out is not None and out.kind == "stop" and out.result.mode == "fallback"
    assert any(expect in r for r in out.reasons), out.reasons
    assert planner.seen == []
    assert np.isfinite(out.result.trajectory.poses).all()
    health = loop.health(ns(now))
    assert health.level == LEVEL_WARN and expect.split(":")[0] in health.message


def test_fallback_holds_the_last_plan_then_stops():
    loop, _ = make(fallback_hold_s=1.0, fallback_decel=2.0)
    feed(loop, 1.0)
    plan = loop.step(ns(1.0))
    assert plan.kind == "plan"
    # corrupt frame 0.5 s later, with valid odometry: the plan continues, expressed from the new pose
    feed(loop, 1.5, image=b"garbage")
    out = loop.step(ns(1.5))
    assert out.kind == "hold" and out.stamp_ns == ns(1.5)
    np.testing.assert_allclose(out.origin, [15.0, 0.0, 0.0])
    np.testing.assert_allclose(out.result.trajectory.poses[:, 0], 10.0 * SPEC.times, atol=1e-9)
    # 1.2 s after the plan: too old to hold -> comfortable stop from the current speed
    feed(loop, 2.2, image=b"garbage", odom=ego(2.2, x=22.0, v=8.0))
    out = loop.step(ns(2.2))
    assert out.kind == "stop"
    np.testing.assert_allclose(out.result.trajectory.poses, comfortable_stop(8.0, 0.0, SPEC, 2.0))
    assert out.result.trajectory.poses[-1, 0] == pytest.approx(8.0**2 / (2 * 2.0))


def test_hold_without_valid_odometry_uses_the_plan_itself():
    loop, _ = make()
    feed(loop, 1.0, odom=ego(1.0, x=10.0, yaw=0.5))
    loop.step(ns(1.0))
    feed(loop, 1.5, odom=ego(1.5, x=float("inf")))
    out = loop.step(ns(1.5))
    assert out.kind == "hold" and "odometry" in out.reasons[0]
    expected_origin = compose([10.0, 0.0, 0.5], [5.0, 0.0, 0.0])
    np.testing.assert_allclose(out.origin, expected_origin, atol=1e-9)
    np.testing.assert_allclose(out.result.trajectory.poses[:, 0], 10.0 * SPEC.times, atol=1e-9)


def test_a_clock_leap_waits_one_cycle_for_its_frame_before_calling_inputs_stale():
    """A simulator's next episode: /clock leaps 1 s forward just before that episode's first frame. The
    cycle that runs in between must not answer the new time with a stale-input stop; inputs that stay
    away are still called stale one cycle later."""
    loop, _ = make()
    feed(loop, 20.0)
    assert loop.step(ns(20.0)).kind == "plan"
    assert loop.step(ns(21.0)) is None, "a stale fallback for a frame that is about to come"
    feed(loop, 21.0)
    out = loop.step(ns(21.0))
    assert out.kind == "plan" and out.stamp_ns == ns(21.0)
    assert loop.step(ns(22.0)) is None
    out = loop.step(ns(22.1))
    assert out is not None and out.kind == "stop" and any("stale" in r for r in out.reasons), out


def test_nothing_runs_before_the_clock_starts():
    loop, planner = make()
    feed(loop, 100.0)  # sim time: inputs arrive before the first /clock
    assert loop.step(ns(0.0)) is None and planner.seen == []
    assert loop.step(ns(100.0)).kind == "plan"


def test_missing_camera_gives_fallback_after_timeout_naming_it():
    loop, planner = make(input_timeout_s=0.5, plan_rate_hz=10.0)
    assert loop.step(ns(1.0)) is None
    for k in range(6):
        t = 1.0 + 0.1 * k
        feed(loop, t, cameras=("front",))
        assert loop.step(ns(t)) is None  # waiting: not yet input_timeout_s without a complete set
    out = loop.step(ns(1.8))
    assert out.kind == "stop"
    assert "missing: camera left: no message received" in out.reasons
    assert loop.step(ns(1.85)) is None  # at most one fallback per period
    assert loop.step(ns(1.9)).kind == "stop"
    assert planner.seen == []


def test_inputs_stopping_goes_stale_then_fallback_each_period():
    loop, _ = make(input_timeout_s=0.3)
    feed(loop, 1.0)
    assert loop.step(ns(1.0)).kind == "plan"
    assert loop.step(ns(1.2)) is None
    out = loop.step(ns(1.4))
    assert out.kind == "hold" and out.stamp_ns == ns(1.4)
    assert any(r.startswith("stale: camera front") for r in out.reasons)


def test_planner_errors_and_non_finite_plans_fall_back():
    class Broken(Recording):
        def __init__(self, failure):
            super().__init__()
            self.failure = failure

        def plan(self, obs, budget_ms=None):
            if self.failure == "raise":
                raise RuntimeError("cuda went away")
            res = super().plan(obs, budget_ms)
            res.trajectory.poses[3, 1] = np.nan
            return res

    for mode, expect in (("raise", "RuntimeError: cuda went away"), ("nan", "non-finite")):
        loop, _ = make(Broken(mode))
        feed(loop, 1.0)
        out = loop.step(ns(1.0))
        assert out.kind == "stop" and expect in out.reasons[0]


def test_deadline_miss_is_published_and_counted():
    clock = iter(np.arange(0.0, 100.0, 0.25))  # each wall reading advances 250 ms
    loop = PlanningLoop(Recording(), RIG, LoopConfig(deadline_ms=100.0), decode_image, decode_odom, lambda: next(clock))
    feed(loop, 1.0)
    out = loop.step(ns(1.0))
    # wall readings: cycle start, plan start, plan end, cycle end
    assert out.kind == "plan" and out.deadline_missed and out.processing_ms == pytest.approx(750.0)
    assert out.planner_ms == pytest.approx(250.0)
    health = loop.health(ns(1.0))
    assert health.level == LEVEL_WARN and "deadline" in health.message
    assert health.values["deadline_misses"] == "1"
    assert loop.health(ns(1.1)).level == LEVEL_OK  # reported once, totals kept
    assert loop.health(ns(1.1)).values["deadline_misses"] == "1"


def test_time_going_backwards_resets_and_planning_resumes():
    loop, _ = make()
    feed(loop, 10.0)
    assert loop.step(ns(10.0)).kind == "plan"
    feed(loop, 1.0)  # simulator reset: everything goes back to t = 1
    out = loop.step(ns(1.0))
    assert out.kind == "plan" and out.stamp_ns == ns(1.0)
    assert loop.health(ns(1.0)).values["time_jumps"] != "0"


def test_inputs_jumping_back_before_the_clock_wait_for_it_instead_of_falling_back():
    wall = [0.0]
    loop = PlanningLoop(Recording(), RIG, LoopConfig(), decode_image, decode_odom, lambda: wall[0])
    feed(loop, 10.0)
    assert loop.step(ns(10.0)).kind == "plan"
    feed(loop, 1.0)  # a bag looped: its first frame arrives before /clock goes back
    wall[0] = 0.1
    assert loop.step(ns(10.05)) is None, "the new inputs were called stale while the clock lagged them"
    assert loop.waiting_for_clock, "the caller must retry soon: the clock moves without new inputs"
    out = loop.step(ns(1.01))  # /clock went back
    assert out.kind == "plan" and out.stamp_ns == ns(1.0) and not loop.waiting_for_clock


def test_a_set_completed_before_the_clock_goes_back_survives_the_clock_jump():
    loop, _ = make()
    feed(loop, 10.0)
    assert loop.step(ns(10.0)).kind == "plan"
    assert loop.on_odometry(ns(1.0), ego(1.0)) is True  # a looped bag: its odometry resets the sync
    assert loop.step(ns(10.03)) is None  # the clock has not gone back yet; the frame's images are still to come
    for c in ("front", "left"):
        loop.on_image(c, ns(1.0), JPEG)
    out = loop.step(ns(1.01))  # /clock went back: the frame's set must not be dropped with the old buffers
    assert out is not None and out.kind == "plan" and out.stamp_ns == ns(1.0)


def test_inputs_jumping_back_fall_back_when_the_clock_never_follows():
    wall = [0.0]
    cfg = LoopConfig(input_timeout_s=0.5)
    loop = PlanningLoop(Recording(), RIG, cfg, decode_image, decode_odom, lambda: wall[0])
    feed(loop, 10.0)
    assert loop.step(ns(10.0)).kind == "plan"
    feed(loop, 1.0)
    assert loop.step(ns(10.05)) is None
    wall[0] = 0.6  # longer than input_timeout_s of wall time
    out = loop.step(ns(10.6))
    assert out is not None and out.kind != "plan" and "stale" in out.reasons[0]


def test_fast_slow_counters_and_moe_load():
    class Slow(Recording):
        def plan(self, obs, budget_ms=None):
            res = super().plan(obs, budget_ms)
            return PlanResult(res.trajectory, mode="slow", reasoning="car ahead", moe={"load": [0.25, 0.75]})

    loop, _ = make(Slow())
    for k in range(3):
        feed(loop, 1.0 + 0.1 * k)
        assert loop.step(ns(1.0 + 0.1 * k)).kind == "plan"
    v = loop.health(ns(1.2)).values
    assert (v["plans"], v["slow"], v["fast"], v["slow_rate"]) == ("3", "3", "0", "1.000")
    assert v["moe_load"] == "[0.250, 0.750]"


def test_swap_planner_and_health_without_model():
    loop, _ = make()
    other = Recording(use_yaw_rate=False)
    loop.swap_planner(other)
    feed(loop, 1.0, odom=ego(1.0, w=0.5))
    out = loop.step(ns(1.0))
    assert other.seen and out.result.trajectory.poses[-1, 1] == 0.0
    loop.swap_planner(None)
    assert loop.step(ns(1.1)) is None
    assert loop.health(ns(1.1)).level == LEVEL_ERROR and loop.health(ns(1.1)).message == "model not loaded"


def test_unknown_command_is_kept_out_and_reported():
    loop, planner = make()
    loop.on_command("left")
    loop.on_command("fly")
    loop.on_instruction("take the second exit")
    feed(loop, 1.0)
    loop.step(ns(1.0))
    assert planner.seen[-1].command == "left" and planner.seen[-1].instruction == "take the second exit"
    assert "fly" in loop.health(ns(1.0)).message


def test_config_validation():
    with pytest.raises(ValueError, match="plan_rate_hz"):
        LoopConfig(plan_rate_hz=0.0)
    cfg = LoopConfig.from_params({"sync_slop_s": 0.1, "model_path": "x"})
    assert cfg.sync_slop_s == 0.1


def test_trajectory_type_is_what_the_planner_promised():
    loop, _ = make()
    feed(loop, 1.0)
    out = loop.step(ns(1.0))
    assert isinstance(out.result.trajectory, Trajectory) and out.result.trajectory.spec == SPEC


def test_the_planner_time_is_reported_apart_from_the_cycle():
    loop, _ = make()
    feed(loop, 1.0)
    out = loop.step(ns(1.0))
    assert out.kind == "plan" and out.planner_ms is not None and 0 <= out.planner_ms <= out.processing_ms
    loop.on_image("front", ns(1.1), JPEG[:20] + b"\x00" * 50)
    loop.on_image("left", ns(1.1), JPEG)
    loop.on_odometry(ns(1.1), ego(1.1))
    out = loop.step(ns(1.1))
    assert out.kind != "plan" and out.planner_ms is None  # a fallback never called the planner


EPOCH_NS = 1_765_000_000_123_456_789


def test_epoch_stamps_are_answered_exactly_at_10_hz():
    """Wall-clock stamps do not survive float seconds to the nanosecond; every plan answers its set's
    stamp exactly, and the ego history and propagation still see 0.1 s between frames."""
    planner = Recording()
    planner.history = 4
    loop, _ = make(planner)
    stamps = [EPOCH_NS + k * 100_000_000 + (k * 7919) % 1000 for k in range(30)]
    answered = []
    for k, t in enumerate(stamps):
        for c in ("front", "left"):
            loop.on_image(c, t, JPEG)
        loop.on_odometry(t, EgoState(pose=[1.0 * k, 0.0, 0.0], velocity=[10.0, 0.0], stamp_ns=t))
        out = loop.step(t + 2_000_000)
        assert out is not None and out.kind == "plan", out
        answered.append((out.stamp_ns, out.input_stamp_ns, out.result.trajectory.stamp_ns))
    assert answered == [(t, t, t) for t in stamps]
    assert [o.stamp_ns for o in planner.seen] == stamps
    history = planner.seen[-1].ego_history
    np.testing.assert_allclose(history[:, 0], [-20.0, -15.0, -10.0, -5.0], atol=1e-4)


def scaled_camera_info(loop, camera, scale, fov_deg=None):
    """camera_info of a rig camera recorded at ``scale`` times its size (its field of view, or ``fov_deg``)."""
    cam = RIG.camera(camera)
    w, h = round(cam.width * scale), round(cam.height * scale)
    fov = cam.fov_deg if fov_deg is None else fov_deg
    loop.on_camera_info(camera, w, h, [0.5 * w / np.tan(np.radians(fov) / 2), 0, 0, 0, 0, 0, 0, 0, 1])
    return w, h


def test_images_at_another_resolution_with_the_rigs_view_are_resized():
    loop, planner = make()
    rng = np.random.default_rng(4)
    big = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
    payload = encode_compressed(big)
    for c in ("front", "left"):
        assert scaled_camera_info(loop, c, 2.0) == (64, 32)
    feed(loop, 1.0, image=payload)
    out = loop.step(ns(1.0))
    assert out.kind == "plan", out.reasons
    seen = planner.seen[-1].images["front"]
    expected = cv2.resize(decode_compressed(payload), (32, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(seen, expected)
    assert loop.health(ns(1.0)).values["camera_info_front"] == "ok"


@pytest.mark.parametrize(
    "setup, expect",
    [
        ("no_camera_info", "camera front: expected 32×16 px (rig), got 64×32; no camera_info gives its field of view"),
        ("other_fov", "camera_info front: field of view differs: 60.0°"),
        ("other_aspect", "camera_info front: aspect ratio differs: 64×48 px (1.333)"),
        ("info_says_2x_image_is_1x", "camera front: CompressedImage: expected a 64×32 image, got 32×16"),
    ],
)
def test_another_view_or_aspect_ratio_is_refused_saying_which(setup, expect):
    loop, planner = make()
    image = encode_compressed(np.zeros((32, 64, 3), np.uint8))
    for c in ("front", "left"):
        if setup == "other_fov":
            scaled_camera_info(loop, c, 2.0, fov_deg=60.0)
        elif setup == "other_aspect":
            loop.on_camera_info(c, 64, 48, RIG.camera(c).K.reshape(-1) * 2)
        elif setup == "info_says_2x_image_is_1x":
            scaled_camera_info(loop, c, 2.0)
            image = JPEG
    feed(loop, 1.0, image=image)
    out = loop.step(ns(1.0))
    assert out.kind == "stop" and planner.seen == []
    assert any(r.startswith(expect) for r in out.reasons), out.reasons


def test_a_planner_with_a_past_frame_gets_the_set_planned_that_long_before():
    planner = Recording()
    planner.past_frame_s = 0.2
    loop, _ = make(planner, plan_rate_hz=10.0, sync_slop_s=0.01)
    shades = {}
    for k in range(6):
        t = 1.0 + 0.1 * k
        shades[round(t, 1)] = 40 + 30 * k
        feed(loop, t, image=encode_compressed(np.full((16, 32, 3), shades[round(t, 1)], np.uint8)))
        assert loop.step(ns(t)).kind == "plan"
    seen = [(round(o.stamp, 1), float(o.past_images["front"].mean())) for o in planner.seen]
    expected = [(1.0, 1.0), (1.1, 1.0), (1.2, 1.0), (1.3, 1.1), (1.4, 1.2), (1.5, 1.3)]
    for (stamp, shade), (want_stamp, want_past) in zip(seen, expected, strict=True):
        assert stamp == want_stamp and abs(shade - shades[want_past]) < 3, (stamp, shade)
    feed(loop, 1.6, odom=ego(1.6, x=500.0))  # the next episode: no past frame from the last one
    assert loop.step(ns(1.6)).kind == "plan"
    np.testing.assert_array_equal(planner.seen[-1].past_images["front"], planner.seen[-1].images["front"])
    plain, single = make()
    feed(plain, 1.0)
    assert plain.step(ns(1.0)).kind == "plan" and single.seen[-1].past_images is None
