"""Ground-truth messages: LogFrame / Lane <-> wamdiff_msgs through CDR, and the stored definitions."""

import numpy as np
import pytest

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.data import truth_msgs as tm
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_lanes
from wamdiff_ros.rig import load_rig
from wamdiff_ros.types import Agents


def cdr(msg, msgtype):
    store = rt.typestore()
    return store.deserialize_cdr(store.serialize_cdr(msg, msgtype), msgtype)


def assert_frames_equal(a, b):
    assert (a.stamp_ns, a.episode, a.command, a.instruction, a.scenario) == (
        b.stamp_ns,
        b.episode,
        b.command,
        b.instruction,
        b.scenario,
    )
    for name in ("pose", "velocity", "acceleration"):
        np.testing.assert_array_equal(getattr(a.ego, name), getattr(b.ego, name))
    assert a.ego.yaw_rate == b.ego.yaw_rate and a.ego.stamp_ns == b.ego.stamp_ns
    assert a.route_lane_ids == b.route_lane_ids and a.traffic_lights == b.traffic_lights
    for name in ("ids", "types", "sizes", "poses", "velocities", "valid"):
        np.testing.assert_array_equal(getattr(a.agents, name), getattr(b.agents, name))


def test_frame_round_trip_through_cdr():
    frame = synthetic_frames("ep", 3)[1]
    frame.ego.acceleration[:] = (0.7, -0.2)
    frame.ego.yaw_rate = 0.05
    frame.traffic_lights = {3: 2, 1: 0}
    back = tm.msg_to_frame(cdr(tm.frame_to_msg(frame), "wamdiff_msgs/msg/FrameTruth"))
    assert_frames_equal(back, frame)
    assert back.traffic_lights == {1: 0, 3: 2}


def test_header_stamp_override_and_frame_id():
    frame = synthetic_frames("ep", 3)[2]
    msg = tm.frame_to_msg(frame, stamp_ns=12_250_000_000)
    assert msg.header.frame_id == "map" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    assert tm.msg_to_frame(msg).stamp_ns == 12_250_000_000


def test_invalid_agents_are_not_written_and_multi_step_agents_rejected():
    frame = synthetic_frames("ep", 2)[0]
    a = frame.agents
    frame.agents = Agents(a.ids, a.types, a.sizes, a.poses, a.velocities, [[False], [True]])
    msg = tm.frame_to_msg(frame)
    assert list(msg.agent_ids) == [11]
    two_steps = (np.repeat(a.poses, 2, 1), np.repeat(a.velocities, 2, 1), np.ones((2, 2), bool))
    frame.agents = Agents(a.ids, a.types, a.sizes, *two_steps)
    with pytest.raises(ValueError, match="1 time step"):
        tm.frame_to_msg(frame)


def test_empty_agents_round_trip():
    frame = synthetic_frames("ep", 1)[0]
    frame.agents = Agents.empty()
    back = tm.msg_to_frame(cdr(tm.frame_to_msg(frame), "wamdiff_msgs/msg/FrameTruth"))
    assert len(back.agents) == 0 and back.agents.poses.shape == (0, 1, 3)


def test_lanes_round_trip_through_cdr():
    lanes = synthetic_lanes()
    msg = cdr(tm.lanes_to_msg(lanes, "ep7", 3_000_000_000), "wamdiff_msgs/msg/RoadMap")
    assert msg.episode == "ep7"
    back = tm.msg_to_lanes(msg)
    assert [x.lane_id for x in back] == [1, 2, 3]
    for x, y in zip(back, lanes):
        np.testing.assert_array_equal(x.centerline, y.centerline)
        np.testing.assert_array_equal(x.width, y.width)
        assert (x.successors, x.in_intersection, x.speed_limit, x.markings) == (
            y.successors,
            y.in_intersection,
            y.speed_limit,
            y.markings,
        )


def test_unknown_marking_is_rejected():
    msg = tm.lanes_to_msg(synthetic_lanes(), "ep", 0)
    msg.lanes[0].left_marking = "zigzag"
    with pytest.raises(ValueError, match="marking must be one of"):
        tm.msg_to_lanes(msg)


def test_definitions_are_generated_with_nested_lane():
    text, _ = rt.typestore().generate_msgdef("wamdiff_msgs/msg/RoadMap", ros_version=2)
    assert "wamdiff_msgs/Lane[] lanes" in text and "MSG: wamdiff_msgs/Lane" in text and "MSG: std_msgs/Header" in text


def test_standard_messages():
    rig = load_rig()
    cam = rig.cameras[0]
    info = cdr(rt.camera_info(cam, 1_500_000_000), "sensor_msgs/msg/CameraInfo")
    assert (info.width, info.height, info.distortion_model) == (cam.width, cam.height, "plumb_bob")
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), cam.K)
    np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4)[:, :3], cam.K)
    assert info.header.frame_id == f"{cam.name}_optical" and not np.any(info.d)
    frame = synthetic_frames("ep", 2)[1]
    frame.ego.pose[2] = 2.5
    frame.ego.velocity[:] = (4.0, 0.3)
    frame.ego.yaw_rate = -0.1
    odom = cdr(rt.odometry(frame.ego, 7_000_000_000), "nav_msgs/msg/Odometry")
    assert (odom.header.frame_id, odom.child_frame_id) == ("map", "base_link")
    ego = rt.ego_from_odometry(odom)
    np.testing.assert_allclose(ego.pose, frame.ego.pose, atol=1e-12)
    np.testing.assert_allclose(ego.velocity, (4.0, 0.3))
    assert ego.yaw_rate == -0.1 and ego.stamp_ns == 7_000_000_000
    assert cdr(rt.clock(3_000_000_001), "rosgraph_msgs/msg/Clock").clock.nanosec == 1
    with pytest.raises(ValueError, match="stamp"):
        rt.to_time(-1)
    with pytest.raises(ValueError, match="integer nanoseconds"):
        rt.to_time(1.5)
    epoch = 1_765_000_000_123_456_789
    odom = cdr(rt.odometry(frame.ego, epoch), "nav_msgs/msg/Odometry")
    assert rt.ego_from_odometry(odom).stamp_ns == epoch
