"""Message conversions whose exact wire form matters: what the planner node publishes and takes serialized."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.stamps import NS_PER_S, time_ns
from wamdiff_ros.types import EgoState

pytestmark = pytest.mark.ros

EPOCH_NS = 1_765_000_000_123_456_789
"""A wall-clock stamp whose nanoseconds float seconds cannot hold."""


@pytest.mark.parametrize("frame_id", ["map", "odom", "base_link", "a", ""])
@pytest.mark.parametrize("n", [0, 1, 8, 13])
def test_path_cdr_is_the_path_message_as_rclpy_serializes_it(frame_id, n):
    rng = np.random.default_rng(n)
    poses = rng.normal(0.0, 30.0, (n, 3))
    stamp = EPOCH_NS + int(rng.integers(0, 10**12))
    msg = conv.path(poses, stamp, 0.5, frame_id)
    data = conv.path_cdr(poses, stamp, 0.5, frame_id)
    assert len(data) == len(serialize_message(msg))  # padding bytes may differ: rclpy leaves them unset
    assert deserialize_message(data, Path) == msg


def test_path_cdr_rejects_a_negative_stamp():
    with pytest.raises(ValueError, match="stamp"):
        conv.path_cdr(np.zeros((2, 3)), -1, 0.5, "map")
    with pytest.raises(ValueError, match="integer nanoseconds"):
        conv.path_cdr(np.zeros((2, 3)), 1.5, 0.5, "map")


@pytest.mark.parametrize(("frame_id", "child"), [("map", "base_link"), ("odom", "b"), ("", "")])
def test_read_odometry_gives_the_fields_rclpy_serialized(frame_id, child):
    rng = np.random.default_rng(len(frame_id) + len(child))
    ego = EgoState(pose=[*rng.normal(0.0, 100.0, 2), 2.9], velocity=rng.normal(0.0, 5.0, 2), yaw_rate=-0.3)
    msg = conv.odometry(ego, EPOCH_NS, frame_id, child)
    msg.pose.covariance, msg.twist.covariance = rng.normal(size=36), rng.normal(size=36)
    odom = conv.read_odometry(serialize_message(msg))
    assert (odom.frame_id, odom.child_frame_id) == (frame_id, child)
    got, expected = conv.ego_from_odometry(odom), rt.ego_from_odometry(msg)
    np.testing.assert_allclose(got.pose, expected.pose, atol=1e-12)
    np.testing.assert_allclose(got.velocity, expected.velocity, atol=1e-12)
    assert got.yaw_rate == expected.yaw_rate and got.stamp_ns == expected.stamp_ns == EPOCH_NS


def test_read_odometry_reads_big_endian_cdr():
    body = struct.pack(">iII", 7, 500_000_000, 4) + b"map\0" + struct.pack(">I", 2) + b"b\0" + b"\0" * 2
    body += struct.pack(">7d", 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0) + b"\0" * 288
    body += struct.pack(">6d", 3.0, -0.5, 0.0, 0.0, 0.0, 0.25) + b"\0" * 288
    odom = conv.read_odometry(b"\x00\x00\x00\x00" + body)
    assert (odom.stamp_ns, odom.frame_id, odom.child_frame_id) == (7_500_000_000, "map", "b")
    assert (odom.x, odom.y, odom.q, odom.vx, odom.vy, odom.yaw_rate) == (
        1.0,
        2.0,
        (0.0, 0.0, 0.0, 1.0),
        3.0,
        -0.5,
        0.25,
    )


def test_read_odometry_rejects_a_truncated_message_and_a_bad_quaternion():
    data = serialize_message(conv.odometry(EgoState(pose=[1.0, 2.0, 0.3]), 5_000_000_000))
    with pytest.raises(ValueError, match="not a serialized nav_msgs/Odometry"):
        conv.read_odometry(data[:60])
    odom = conv.read_odometry(data)
    bad = conv.PlanarOdometry(odom.stamp_ns, "map", "base_link", 1.0, 2.0, (0.0, 0.0, 0.0, 0.5), 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unit quaternion"):
        conv.ego_from_odometry(bad)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8"])
@pytest.mark.parametrize("frame_id", ["front_optical", "", "ab"])
def test_read_image_gives_the_fields_and_pixels_rclpy_serialized(encoding, frame_id):
    image = np.random.default_rng(5).integers(0, 255, (16, 32, 3), dtype=np.uint8)
    raw = conv.raw_image(image, EPOCH_NS, frame_id, encoding)
    fields = conv.read_image(serialize_message(raw), compressed=False)
    assert (fields.width, fields.height, fields.encoding, fields.step) == (raw.width, raw.height, encoding, raw.step)
    assert fields.frame_id == frame_id and fields.stamp_ns == EPOCH_NS
    np.testing.assert_array_equal(conv.decode_image(fields, (32, 16)), conv.decode_image(raw, (32, 16)))
    jpeg = conv.compressed_image(image, EPOCH_NS, frame_id)
    fields = conv.read_image(serialize_message(jpeg), compressed=True)
    assert fields.stamp_ns == EPOCH_NS
    assert fields.format == jpeg.format and bytes(fields.data) == bytes(jpeg.data) and fields.frame_id == frame_id
    np.testing.assert_array_equal(conv.decode_image(fields, (32, 16)), conv.decode_image(jpeg, (32, 16)))


def test_read_image_rejects_a_truncated_message():
    data = serialize_message(conv.compressed_image(np.zeros((16, 32, 3), np.uint8), NS_PER_S, "front_optical"))
    with pytest.raises(ValueError, match="not a serialized sensor_msgs/CompressedImage"):
        conv.read_image(data[: len(data) - 10], compressed=True)


def test_read_image_fields_after_an_encoding_that_ends_on_an_alignment_boundary():
    msg = conv.raw_image(np.zeros((4, 6, 3), np.uint8), 3 * NS_PER_S, "cam", "rgb8")
    msg.encoding = "bayer_rggb8"  # 12 bytes with its NUL: is_bigendian then shifts step's alignment
    fields = conv.read_image(serialize_message(msg), compressed=False)
    assert (fields.encoding, fields.width, fields.height, fields.step) == ("bayer_rggb8", 6, 4, msg.step)
    assert bytes(fields.data) == bytes(msg.data)


@pytest.mark.parametrize("text", ["", "left", "turn right at the second exit", "überholen 🚗"])
def test_read_string_gives_the_text_rclpy_serialized(text):
    from std_msgs.msg import String

    assert conv.read_string(serialize_message(String(data=text))) == text


def test_read_string_rejects_a_truncated_message():
    from std_msgs.msg import String

    data = serialize_message(String(data="straight"))
    with pytest.raises(ValueError, match="not a serialized std_msgs/String"):
        conv.read_string(data[:7])


def test_epoch_stamps_round_trip_exactly_through_the_serialized_paths():
    """What the node reads from an image or odometry is what its Path answers with, to the nanosecond."""
    image = conv.raw_image(np.zeros((4, 6, 3), np.uint8), EPOCH_NS, "cam", "rgb8")
    odom = conv.odometry(EgoState(pose=[1.0, 2.0, 0.3]), EPOCH_NS + 1)
    assert conv.read_image(serialize_message(image), compressed=False).stamp_ns == EPOCH_NS
    assert conv.read_odometry(serialize_message(odom)).stamp_ns == EPOCH_NS + 1
    back = deserialize_message(conv.path_cdr(np.zeros((8, 3)), EPOCH_NS, 0.5, "map"), Path)
    assert time_ns(back.header.stamp) == EPOCH_NS
    assert [time_ns(p.header.stamp) - EPOCH_NS for p in back.poses] == [k * NS_PER_S // 2 for k in range(1, 9)]
