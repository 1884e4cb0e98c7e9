"""SensorPublisher: what both simulator bridges publish per tick, on the rig's topics, over real rclpy."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from wamdiff_ros.rig import CameraSpec, Rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.sensor_publisher import SensorPublisher
from wamdiff_ros.stamps import time_ns
from wamdiff_ros.types import EgoState

from .conftest import wait_until

pytestmark = pytest.mark.ros

RIG = Rig(
    "two",
    (
        CameraSpec("front", 32, 16, 90.0, (1.5, 0.0, 1.6)),
        CameraSpec("left", 48, 24, 60.0, (1.0, 0.5, 1.6), image_topic="/sensing/left/image_raw"),
    ),
)
QOS = QoSProfile(depth=10)
STAMP = 1_700_000_000_123_456_789


class Listener(Node):
    """Records every message of the bridge topics, by topic."""

    def __init__(self, context, topics: dict[str, type]):
        super().__init__("sensor_listener", context=context)
        self.got: dict[str, list] = {t: [] for t in topics}
        self._lock = threading.Lock()
        for topic, kind in topics.items():
            self.create_subscription(kind, topic, lambda m, t=topic: self._on(t, m), QOS)

    def _on(self, topic, msg):
        with self._lock:
            self.got[topic].append(msg)

    def count(self, topic) -> int:
        with self._lock:
            return len(self.got[topic])


def _topics(raw: bool) -> dict[str, type]:
    image = Image if raw else CompressedImage
    return {
        "/clock": Clock,
        "/ego/odom": Odometry,
        "/ego/command": String,
        "/ego/instruction": String,
        "/cameras/front/camera_info": CameraInfo,
        "/cameras/left/camera_info": CameraInfo,
        "/cameras/front/image" + ("" if raw else "/compressed"): image,
        "/sensing/left/image_raw" + ("" if raw else "/compressed"): image,
    }


def _images():
    return {c.name: np.full((c.height, c.width, 3), 60 + i * 50, np.uint8) for i, c in enumerate(RIG.cameras)}


@pytest.mark.parametrize("image_format", ["raw", "compressed"])
def test_a_tick_goes_out_on_the_rig_topics_with_its_stamp(graph, image_format):
    raw = image_format == "raw"
    node = graph.add(Node("bridge", context=graph.context))
    sensors = SensorPublisher(node, RIG, QOS, image_format=image_format, jpeg_quality=95)
    listener = graph.add(Listener(graph.context, _topics(raw)))
    wait_until(lambda: sensors.sensors_matched(1), what="listener matched")
    ego = EgoState(pose=np.array([3.0, -2.0, 0.4]), velocity=np.array([7.5, 0.0]), yaw_rate=0.1, stamp_ns=STAMP)
    sensors.publish(_images(), ego, STAMP, "left", "take the next exit")
    wait_until(lambda: all(listener.count(t) == 1 for t in listener.got), what="every topic once")

    got = {t: msgs[0] for t, msgs in listener.got.items()}
    assert time_ns(got["/clock"].clock) == STAMP
    for topic, msg in got.items():
        if hasattr(msg, "header"):
            assert time_ns(msg.header.stamp) == STAMP, topic
    assert got["/ego/command"].data == "left"
    assert got["/ego/instruction"].data == "take the next exit"
    odom = got["/ego/odom"]
    assert (odom.header.frame_id, odom.child_frame_id) == ("map", "base_link")
    assert odom.pose.pose.position.x == pytest.approx(3.0)
    assert odom.twist.twist.linear.x == pytest.approx(7.5)
    info = got["/cameras/left/camera_info"]
    assert (info.width, info.height) == (48, 24)
    left = got["/sensing/left/image_raw" + ("" if raw else "/compressed")]
    assert left.header.frame_id.startswith("left")
    if raw:
        assert left.encoding == "rgb8"
    pixels = conv.decode_image(left, (48, 24))
    assert pixels.shape == (24, 48, 3)
    assert np.abs(pixels.astype(int) - 110).max() <= 2  # JPEG at quality 95 keeps a flat grey


def test_state_only_and_camera_info_only_ticks(graph):
    node = graph.add(Node("bridge", context=graph.context))
    sensors = SensorPublisher(node, RIG, QOS, image_format="raw")
    listener = graph.add(Listener(graph.context, _topics(True)))
    wait_until(lambda: sensors.sensors_matched(1), what="listener matched")
    ego = EgoState(pose=np.zeros(3), velocity=np.zeros(2), stamp_ns=STAMP)
    sensors.publish_state(ego, STAMP)
    wait_until(lambda: listener.count("/ego/odom") == 1 and listener.count("/clock") == 1, what="state")
    sensors.publish_sensors(None, STAMP + 1, "straight", "")
    wait_until(lambda: listener.count("/cameras/front/camera_info") == 1, what="camera_info")
    wait_until(lambda: listener.count("/ego/command") == 1, what="command")
    assert listener.count("/cameras/front/image") == 0 and listener.count("/sensing/left/image_raw") == 0
    assert listener.count("/ego/odom") == 1


def test_bad_input_is_refused_with_the_input_named(graph):
    node = graph.add(Node("bridge", context=graph.context))
    with pytest.raises(ValueError, match="image_format"):
        SensorPublisher(node, RIG, QOS, image_format="png")
    with pytest.raises(ValueError, match="jpeg_quality"):
        SensorPublisher(node, RIG, QOS, jpeg_quality=0)
    sensors = SensorPublisher(node, RIG, QOS)
    with pytest.raises(ValueError, match="left"):
        sensors.publish_sensors({"front": _images()["front"]}, STAMP, "straight", "")
