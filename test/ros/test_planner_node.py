"""planner_node in a real rclpy graph: plans, fallbacks with diagnostics for every bad input, lifecycle,
parameters and hot reload."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import yaml
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from wamdiff_ros.geometry import compose
from wamdiff_ros.planning.fallback import comfortable_stop
from wamdiff_ros.rig import Rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.planner_node import PlannerNode
from wamdiff_ros.stamps import NS_PER_S, time_ns
from wamdiff_ros.types import EgoState, TrajectorySpec

from .conftest import RIG, Collector, Feeder, cv_checkpoint, set_remote, values, wait_until

pytestmark = pytest.mark.ros
SPEC = TrajectorySpec(8, 0.5)


def start(graph, tmp_path, raw=False, feeder_rig=None, **overrides):
    model = cv_checkpoint(tmp_path / "cv")
    params = {
        "model_path": str(model),
        "image_format": "raw" if raw else "compressed",
        "input_qos": "default",
        "diagnostics_period_s": 0.2,
        "plan_rate_hz": 50.0,
        **overrides,
    }
    node = PlannerNode(context=graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    if params.get("autostart", True):
        from rclpy.lifecycle import TransitionCallbackReturn

        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    graph.add(node)
    feeder = graph.add(Feeder(graph.context, raw=raw, rig=feeder_rig))
    collector = graph.add(Collector(graph.context))
    return node, feeder, collector


def expect_plan(collector, stamp, ego, frame="map"):
    """A CV plan: poses at stamp + k·dt along the ego's heading at its speed, in ``frame``."""
    path = collector.path_for(stamp)
    ego = ego(stamp) if callable(ego) else ego
    assert path.header.frame_id == frame
    assert len(path.poses) == SPEC.num_poses
    for k, ps in enumerate(path.poses):
        assert time_ns(ps.header.stamp) == stamp + (k + 1) * round(SPEC.dt * 1e9)
        assert ps.header.frame_id == frame
    local = np.stack([SPEC.times * ego.velocity[0], np.zeros(8), np.zeros(8)], -1)
    expected = compose(ego.pose, local) if frame == "map" else local
    np.testing.assert_allclose(conv.path_poses(path), expected, atol=1e-6)
    return path


def test_every_answer_at_10_hz_carries_its_frame_stamp_exactly(graph, tmp_path):
    """Wall-clock frames at 10 Hz, stamped to the nanosecond: each trajectory's header.stamp is its input
    frame's stamp, bit for bit (float seconds lose the last digits of epoch-sized stamps)."""
    _, feeder, collector = start(graph, tmp_path, plan_rate_hz=10.0)
    feeder.wait_connected()
    sent = []
    for k in range(20):
        t = feeder.now() // 1000 * 1000 + 123 + k  # epoch-sized, odd nanoseconds
        sent.append(feeder.send(stamp=t))
        time.sleep(0.1)
    answers = [collector.path_for(t, timeout=30.0) for t in sent]
    assert [time_ns(p.header.stamp) for p in answers] == sent
    assert sent[0] > 10**18  # wall-clock (epoch-sized) stamps


def test_plans_from_images_and_odometry(graph, tmp_path):
    node, feeder, collector = start(graph, tmp_path)
    feeder.wait_connected()
    ego = EgoState(pose=[10.0, 5.0, 0.3], velocity=[8.0, 0.0])
    t = feeder.send(ego=ego)
    expect_plan(collector, t, ego)
    ok = collector.diagnostic(lambda d: d.level == b"\x00" and values(d).get("plans", "0") != "0", what="OK status")
    v = values(ok)
    assert v["model_loaded"] == "true" and v["family"] == "constant_velocity" and v["state"] == "active"
    assert float(v["age_camera_front_s"]) >= 0.0
    # base_link output, switched at run time
    node.set_parameters([Parameter("trajectory_frame", value="base_link")])
    t = feeder.send(ego=ego)
    expect_plan(collector, t, ego, frame="base_link")


def _jpeg(width, height):
    return conv.compressed_image(np.zeros((height, width, 3), np.uint8), 0, "x")


def _bad_input(case, feeder, t):
    """Keyword arguments for Feeder.send that make frame ``t`` bad in the way ``case`` says."""
    if case == "corrupt_jpeg":
        msg = _jpeg(256, 128)
        msg.header.stamp = conv.to_time(t)
        msg.data = bytes(msg.data[:200]) + b"\x00" * 300
        return {"image_override": {"front": msg}}, "camera front"
    if case == "wrong_size":
        msg = _jpeg(128, 64)
        msg.header.stamp = conv.to_time(t)
        return {"image_override": {"front": msg}}, "expected a 256×128 image"
    if case == "nan_odometry":
        return {"ego": EgoState(pose=[np.nan, 5.0, 0.3], velocity=[8.0, 0.0])}, "odometry: non-finite"
    if case == "bad_quaternion":
        odom = conv.odometry(feeder.moving(t), t)
        odom.pose.pose.orientation.w = 0.0
        return {"odom_override": odom}, "unit quaternion"
    if case == "camera_info_mismatch":
        info = conv.camera_info(RIG.cameras[1], t)
        info.width = 640
        return {"info_override": {"front_left": info}}, "camera_info front_left: aspect ratio differs: 640×128 px"
    if case == "wrong_encoding":
        msg = conv.raw_image(np.zeros((128, 256, 3), np.uint8), t, "front_optical")
        msg.encoding = "yuv422"
        return {"image_override": {"front": msg}}, "Image.encoding"
    if case == "stale":
        return {"stamp": t - 3 * NS_PER_S}, "stale"
    raise ValueError(case)


@pytest.mark.parametrize(
    "case",
    ["corrupt_jpeg", "wrong_size", "nan_odometry", "bad_quaternion", "camera_info_mismatch", "wrong_encoding", "stale"],
)
def test_bad_input_gives_fallback_and_diagnostic_and_node_keeps_planning(graph, tmp_path, case):
    node, feeder, collector = start(graph, tmp_path, raw=case == "wrong_encoding")
    feeder.wait_connected()
    ego = feeder.moving
    t0 = feeder.send()
    expect_plan(collector, t0, ego)
    n_before = node._loop.counts["fallback_hold"] + node._loop.counts["fallback_stop"]
    time.sleep(0.1)  # beyond sync_slop_s: frame t0's messages cannot complete frame t1's set
    t1 = feeder.now()
    kwargs, expect = _bad_input(case, feeder, t1)
    kwargs.setdefault("stamp", t1)
    feeder.send(**kwargs)
    status = collector.diagnostic(
        lambda d: d.level == b"\x01" and expect in d.message and "fallback" in d.message,
        what=f"a WARN diagnostic saying fallback and {expect!r}",
    )
    assert status.name == "planner_node: planning"
    wait_until(lambda: node._loop.counts["fallback_hold"] + node._loop.counts["fallback_stop"] > n_before)
    if case != "stale":  # the fallback answers the bad frame, with the trajectory format of a plan
        path = collector.path_for(t1)
        assert path.header.frame_id == "map" and len(path.poses) == 8
        assert np.isfinite(conv.path_poses(path)).all()
    assert node._loop.counts["plans"] == 1  # the bad frame never reached the planner
    for _ in range(20):  # good frames again: planning resumes (the first may still see the bad camera_info)
        time.sleep(0.06)
        t2 = feeder.send()
        expect_plan(collector, t2, ego)  # a plan, or a hold of the previous one: identical for this motion
        if node._loop.counts["plans"] >= 2:
            break
    assert node._loop.counts["plans"] >= 2


def test_cameras_at_twice_the_rig_resolution_are_resized_and_another_view_refused(graph, tmp_path):
    """Raw bgr8 images at 2× the rig's size with camera_info scaled to match (the same field of view) are
    planned on; a camera_info with another field of view is refused, naming both."""
    node, feeder, collector = start(graph, tmp_path, raw=True)
    feeder.wait_connected()
    big = {c.name: replace(c, width=2 * c.width, height=2 * c.height) for c in RIG.cameras}

    def frame(t, fov=None):
        images = {
            c: conv.raw_image(np.full((b.height, b.width, 3), 90, np.uint8), t, f"{c}_optical", "bgr8")
            for c, b in big.items()
        }
        infos = {c: conv.camera_info(replace(b, fov_deg=fov or b.fov_deg), t) for c, b in big.items()}
        return {"stamp": t, "image_override": images, "info_override": infos}

    t = feeder.send(**frame(feeder.now()))
    expect_plan(collector, t, feeder.moving)
    assert node._loop.counts["plans"] == 1
    time.sleep(0.1)
    t = feeder.send(**frame(feeder.now(), fov=45.0))
    path = collector.path_for(t)
    assert len(path.poses) == 8 and node._loop.counts["plans"] == 1
    status = collector.diagnostic(lambda d: "field of view differs" in d.message, what="a field-of-view warning")
    assert "45.0°" in status.message and "the rig's 90.0°" in status.message


def test_a_rig_naming_its_camera_topics_is_subscribed_on_them(graph, tmp_path):
    """A rig with Autoware camera topics (raw rgb8 on image_raw, camera_info beside): the node plans from them."""
    cams = tuple(
        replace(
            c,
            image_topic=f"/sensing/camera/{c.name}/image_raw",
            camera_info_topic=f"/sensing/camera/{c.name}/camera_info",
        )
        for c in RIG.cameras
    )
    rig = Rig("autoware", cams)
    rig_file = tmp_path / "autoware.yaml"
    rig_file.write_text(yaml.safe_dump(rig.to_dict()))
    node, feeder, collector = start(graph, tmp_path, raw=True, feeder_rig=rig, rig_path=str(rig_file))
    assert {s.topic_name for s in node._poller.subscriptions} >= {c.images_on(False) for c in cams}
    feeder.wait_connected()
    t = feeder.send()
    expect_plan(collector, t, feeder.moving)


def test_commands_reach_the_planning_loop_and_a_bad_one_is_reported(graph, tmp_path):
    """The node reads commands serialized and skips repeats: each change must still land, including
    back to a command it had before a bad one."""
    from std_msgs.msg import String

    _, feeder, collector = start(graph, tmp_path)
    feeder.wait_connected()

    def command(text, check, what):
        feeder.command.publish(String(data=text))
        feeder.send()
        collector.diagnostics.clear()
        collector.diagnostic(lambda d: values(d).get("command") is not None and check(d), what=what)

    command("left", lambda d: values(d)["command"] == "left", "command left")
    command("left", lambda d: values(d)["command"] == "left" and d.level == b"\x00", "a repeated command")
    bad = "'fly' is not one of"
    command("fly", lambda d: values(d)["command"] == "left" and bad in d.message, "the bad command reported")
    command("left", lambda d: values(d)["command"] == "left" and bad not in d.message, "left again, warning gone")
    command("right", lambda d: values(d)["command"] == "right", "command right")


def test_fallback_continues_the_last_plan_then_stops(graph, tmp_path):
    _, feeder, collector = start(graph, tmp_path, fallback_hold_s=0.3, fallback_decel=2.0)
    feeder.wait_connected()
    ego = EgoState(pose=[0.0, 0.0, 0.0], velocity=[8.0, 0.0])
    t0 = feeder.send(ego=ego)
    expect_plan(collector, t0, ego)

    def corrupt(t):
        msg = _jpeg(256, 128)
        msg.header.stamp = conv.to_time(t)
        msg.data = b"\xff\xd8\xff" + b"\x00" * 64
        return {"front": msg}

    t1 = t0 + NS_PER_S // 10  # the vehicle moved 0.8 m along the plan
    feeder.send(stamp=t1, ego=EgoState(pose=[0.8, 0.0, 0.0], velocity=[8.0, 0.0]), image_override=corrupt(t1))
    held = conv.path_poses(collector.path_for(t1))
    np.testing.assert_allclose(held[:, 0], 0.8 + 8.0 * SPEC.times, atol=1e-9)  # same line, same speed
    t2 = t0 + NS_PER_S // 2  # beyond fallback_hold_s: comfortable stop from the current speed
    feeder.send(stamp=t2, ego=EgoState(pose=[4.0, 0.0, 0.0], velocity=[8.0, 0.0]), image_override=corrupt(t2))
    stop = conv.path_poses(collector.path_for(t2))
    np.testing.assert_allclose(stop[:, 0], 4.0 + comfortable_stop(8.0, 0.0, SPEC, 2.0)[:, 0], atol=1e-9)


def test_missing_camera_gives_fallback_naming_it(graph, tmp_path):
    node, feeder, collector = start(graph, tmp_path, input_timeout_s=0.3)
    feeder.wait_connected()
    t0 = feeder.send()
    collector.path_for(t0)
    time.sleep(0.1)  # beyond sync_slop_s, so the old front_left image cannot complete a new set
    deadline = feeder.now() + NS_PER_S
    while feeder.now() < deadline and not any("front_left" in d.message for d in list(collector.diagnostics)):
        feeder.send(skip=("front_left",))
        time.sleep(0.05)
    status = collector.diagnostic(lambda d: d.level == b"\x01" and "camera front_left" in d.message)
    assert "stale: camera front_left" in status.message
    assert node._loop.counts["plans"] == 1
    assert node._loop.counts["fallback_hold"] + node._loop.counts["fallback_stop"] >= 1
    t = feeder.send()
    collector.path_for(t)
    assert node._loop.counts["plans"] == 2


def test_invalid_parameter_values_are_rejected_with_a_reason(graph, tmp_path):
    node, _, _ = start(graph, tmp_path)
    res = set_remote(graph, "plan_rate_hz", -1.0, ParameterType.PARAMETER_DOUBLE)
    assert not res.successful and "plan_rate_hz" in res.reason
    res = set_remote(graph, "trajectory_frame", "map", ParameterType.PARAMETER_STRING)
    assert not res.successful and "trajectory_frame" in res.reason and "odom" in res.reason
    res = set_remote(graph, "odom_topic", "relative/odom", ParameterType.PARAMETER_STRING)
    assert not res.successful and "odom_topic" in res.reason
    res = set_remote(graph, "input_timeout_s", 0.0, ParameterType.PARAMETER_DOUBLE)  # exclusiveMinimum 0
    assert not res.successful and "input_timeout_s" in res.reason
    res = set_remote(graph, "sync_slop_s", 0.2, ParameterType.PARAMETER_DOUBLE)
    assert res.successful and node._loop.sync.slop == 0.2
    (d,) = node.describe_parameters(["sync_slop_s"])
    assert d.floating_point_range[0].from_value == 0.0 and d.floating_point_range[0].to_value == 1.0
    assert "synchronisation" in d.description
    (d,) = node.describe_parameters(["reasoning_mode"])
    assert d.additional_constraints == "one of: adaptive, fast, slow"


def test_invalid_override_refuses_to_start(ros_context, tmp_path):
    from rclpy.parameter import Parameter

    from wamdiff_ros.config import ConfigError

    with pytest.raises(ConfigError, match="input_qos"):
        PlannerNode(context=ros_context, parameter_overrides=[Parameter("input_qos", value="fastest")])


def _lifecycle(graph, client_node, transition=None):
    """Trigger ``transition`` (a lifecycle_msgs Transition id) or just read the state, via the services."""
    from lifecycle_msgs.srv import ChangeState, GetState

    if transition is not None:
        client = client_node.create_client(ChangeState, "/planner_node/change_state")
        assert client.wait_for_service(timeout_sec=10.0)
        req = ChangeState.Request()
        req.transition.id = transition
        future = client.call_async(req)
        wait_until(future.done, 15.0, what="change_state response")
        client_node.destroy_client(client)
        if not future.result().success:
            return False
    client = client_node.create_client(GetState, "/planner_node/get_state")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(GetState.Request())
    wait_until(future.done, 10.0, what="get_state response")
    client_node.destroy_client(client)
    return future.result().current_state.label


def test_lifecycle_transitions_through_the_lifecycle_services(graph, tmp_path):
    from lifecycle_msgs.msg import Transition
    from rclpy.node import Node

    from wamdiff_ros.rig import Rig

    node, feeder, collector = start(graph, tmp_path, autostart=False)
    manager = graph.add(Node("lifecycle_manager", context=graph.context))
    assert _lifecycle(graph, manager) == "unconfigured"
    status = collector.diagnostic(lambda d: d.level == b"\x02", what="ERROR while unconfigured")
    assert status.message == "model not loaded" and values(status)["state"] == "unconfigured"

    assert _lifecycle(graph, manager, Transition.TRANSITION_CONFIGURE) == "inactive"
    assert feeder.images["front"].get_subscription_count() == 0  # inactive: no inputs, no outputs
    collector.diagnostic(lambda d: values(d).get("state") == "inactive" and d.level == b"\x00", what="inactive")

    assert _lifecycle(graph, manager, Transition.TRANSITION_ACTIVATE) == "active"
    feeder.wait_connected()
    t = feeder.send()
    expect_plan(collector, t, feeder.moving)

    assert _lifecycle(graph, manager, Transition.TRANSITION_DEACTIVATE) == "inactive"
    wait_until(lambda: feeder.images["front"].get_subscription_count() == 0, what="subscriptions released")
    n = len(collector.paths)
    feeder.send()
    time.sleep(0.3)
    assert len(collector.paths) == n

    assert _lifecycle(graph, manager, Transition.TRANSITION_CLEANUP) == "unconfigured"
    assert node._loop is None

    # a checkpoint trained on another rig is refused at configure, with the reason on /diagnostics
    one_camera = cv_checkpoint(tmp_path / "one_cam", rig=Rig("mono", (RIG.cameras[0],)))
    node.set_parameters([Parameter("model_path", value=str(one_camera))])
    assert _lifecycle(graph, manager, Transition.TRANSITION_CONFIGURE) is False
    assert _lifecycle(graph, manager) == "unconfigured"
    collector.diagnostic(lambda d: d.level == b"\x02" and "rig" in d.message, what="rig mismatch ERROR")

    node.set_parameters([Parameter("model_path", value=str(tmp_path / "cv"))])
    assert _lifecycle(graph, manager, Transition.TRANSITION_CONFIGURE) == "inactive"
    assert _lifecycle(graph, manager, Transition.TRANSITION_ACTIVATE) == "active"
    feeder.wait_connected()
    t = feeder.send()
    expect_plan(collector, t, feeder.moving)


def test_wamdiff_checkpoint_plans_in_slow_mode_with_moe_statistics(graph, tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from wamdiff_ros.planners.wamdiff import fresh_planner

    fresh_planner().net.save(tmp_path / "wamdiff")
    node, feeder, collector = start(graph, tmp_path, reasoning_mode="slow", deadline_ms=10000.0)
    node.set_parameters([Parameter("model_path", value=str(tmp_path / "wamdiff"))])
    # loading, exporting and warming up a WAM-Diff takes about 10 s on a slow 2-core VM
    collector.diagnostic(lambda d: values(d).get("family") == "wamdiff", timeout=30.0, what="WAM-Diff swapped in")
    feeder.wait_connected()
    t = feeder.send()
    path = collector.path_for(t, timeout=30.0)
    assert path.header.frame_id == "map" and len(path.poses) == 8
    assert np.isfinite(conv.path_poses(path)).all()
    status = collector.diagnostic(lambda d: values(d).get("slow", "0") != "0", timeout=30.0, what="slow plans")
    assert values(status)["fast"] == "0" and values(status)["moe_load"].startswith("[")


def test_incompatible_input_qos_is_reported_on_diagnostics_until_the_publisher_leaves(graph, tmp_path):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    _, _, collector = start(graph, tmp_path)  # input_qos "default": reliable
    talker = graph.add(Node("best_effort_camera", context=graph.context))
    publisher = talker.create_publisher(CompressedImage, "/cameras/front/image/compressed", qos_profile_sensor_data)
    status = collector.diagnostic(
        lambda d: "incompatible QoS" in d.message, timeout=15.0, what="an incompatible-QoS diagnostic"
    )
    assert status.level == b"\x01" and "/cameras/front/image/compressed" in status.message
    assert "best effort publisher" in status.message.lower() and "/best_effort_camera" in status.message
    talker.destroy_publisher(publisher)
    collector.diagnostic(
        lambda d: not any(k.startswith("qos_") for k in values(d)), timeout=15.0, what="the QoS problem cleared"
    )


def test_diagnostics_continue_under_sim_time_without_a_clock(graph, tmp_path):
    _, _, collector = start(graph, tmp_path, use_sim_time=True)  # nothing publishes /clock
    first = collector.diagnostic(lambda d: True, timeout=10.0, what="a first diagnostic")
    later = collector.diagnostic(lambda d: d is not first, timeout=10.0, what="a second diagnostic")
    assert values(later)["state"] == "active"


def test_sim_time_clock_is_taken_by_the_planning_thread_while_active(graph, tmp_path):
    """Under use_sim_time the active node takes /clock with its inputs (InputPoller.adopt); deactivated,
    the executor takes it again; use_sim_time cannot change under the planning thread."""
    from rosgraph_msgs.msg import Clock

    node, feeder, collector = start(graph, tmp_path, use_sim_time=True)
    clock = feeder.create_publisher(Clock, "/clock", 10)

    def set_clock(t: int, what: str) -> None:
        """Publish /clock until the node shows it (its subscription is best effort: one may be lost)."""

        def shown():
            clock.publish(Clock(clock=conv.to_time(t)))
            time.sleep(0.02)
            return node.get_clock().now().nanoseconds == t

        wait_until(shown, what=what)

    set_clock(100 * NS_PER_S, "the node clock at 100 s")
    assert node._time_source._clock_sub in node._poller.subscriptions
    feeder.wait_connected()
    ego = EgoState(pose=[1.0, 2.0, 0.0], velocity=[5.0, 0.0])
    expect_plan(collector, feeder.send(stamp=100 * NS_PER_S, ego=ego), ego)

    result = node.set_parameters([Parameter("use_sim_time", value=False)])[0]
    assert not result.successful and "deactivate" in result.reason
    assert node.get_clock().now().nanoseconds == 100_000_000_000, "the rejected change still switched the clock"

    from rclpy.lifecycle import TransitionCallbackReturn

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    set_clock(200 * NS_PER_S, "the executor's clock again")
    assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful


def test_threads_parameter_sets_the_inference_threads(tmp_path):
    import torch

    from wamdiff_ros.ros.params import load_schema, schema_path
    from wamdiff_ros.ros.planner_node import load_checked_planner

    schema = load_schema(schema_path("planner"))
    params = {k: v["default"] for k, v in schema["properties"].items()}
    params.update(model_path=str(cv_checkpoint(tmp_path / "cv")), backend="torch", threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so the assertion below cannot pass by the process already having one thread
    try:
        load_checked_planner(params, RIG)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
