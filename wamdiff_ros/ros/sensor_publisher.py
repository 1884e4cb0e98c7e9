"""What a simulator bridge publishes per tick, once for both bridges (``sim_bridge_node``,
``carla_bridge_node``): ``/clock``, the rig's camera images and camera_info, ``/ego/odom``,
``/ego/command`` and ``/ego/instruction``, all stamped with the tick's sim time.

Topics come from the rig (each camera's ``images_on`` / ``camera_info_on``, the per-camera topics the
planner node subscribes); images go out raw (``rgb8``) or JPEG-compressed in each camera's optical frame.
"""

from __future__ import annotations

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from wamdiff_ros.data.bag import COMMAND_TOPIC, INSTRUCTION_TOPIC, ODOM_TOPIC
from wamdiff_ros.data.ros_types import BASE_FRAME, MAP_FRAME, optical_frame
from wamdiff_ros.rig import Rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.types import EgoState

IMAGE_FORMATS = ("raw", "compressed")


class SensorPublisher:
    """The publishers of one bridge's sensor topics on ``node``.

    Args:
        rig: the cameras (names, sizes, intrinsics, topics).
        qos: QoS of every publisher.
        image_format: ``raw`` (sensor_msgs/Image, rgb8) or ``compressed`` (CompressedImage, JPEG).
        jpeg_quality: JPEG quality 1..100 of compressed images.
        camera_topic_prefix: prefix of camera topics the rig does not name itself.
        odom_frame, base_frame: the odometry's header and child frames (REP-105).
    """

    def __init__(
        self,
        node: Node,
        rig: Rig,
        qos: QoSProfile,
        image_format: str = "compressed",
        jpeg_quality: int = 90,
        camera_topic_prefix: str = "/cameras",
        odom_frame: str = MAP_FRAME,
        base_frame: str = BASE_FRAME,
    ):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format: expected one of {IMAGE_FORMATS}, got {image_format!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality: expected 1..100, got {jpeg_quality!r}")
        self.rig = rig
        self.raw = image_format == "raw"
        self.jpeg_quality = int(jpeg_quality)
        self.odom_frame, self.base_frame = odom_frame, base_frame
        prefix = camera_topic_prefix.rstrip("/")
        image_type = Image if self.raw else CompressedImage
        self.clock = node.create_publisher(Clock, "/clock", qos)
        self.images = {
            c.name: node.create_publisher(image_type, c.images_on(not self.raw, prefix), qos) for c in rig.cameras
        }
        self.infos = {c.name: node.create_publisher(CameraInfo, c.camera_info_on(prefix), qos) for c in rig.cameras}
        self.odom = node.create_publisher(Odometry, ODOM_TOPIC, qos)
        self.command = node.create_publisher(String, COMMAND_TOPIC, qos)
        self.instruction = node.create_publisher(String, INSTRUCTION_TOPIC, qos)

    @classmethod
    def from_params(cls, node: Node, rig: Rig, qos: QoSProfile, params: dict) -> SensorPublisher:
        """From a bridge's ``image_format``, ``jpeg_quality`` and ``camera_topic_prefix`` parameters."""
        return cls(node, rig, qos, params["image_format"], params["jpeg_quality"], params["camera_topic_prefix"])

    def publish(
        self,
        images: dict[str, np.ndarray] | None,
        ego: EgoState,
        stamp_ns: int,
        command: str,
        instruction: str,
    ) -> None:
        """A whole tick: /clock, then :meth:`publish_sensors`, then the odometry (last, so that a
        subscriber syncing cameras with odometry completes the frame on it)."""
        self.clock.publish(Clock(clock=conv.to_time(stamp_ns)))
        self.publish_sensors(images, stamp_ns, command, instruction)
        self.odom.publish(conv.odometry(ego, stamp_ns, self.odom_frame, self.base_frame))

    def publish_state(self, ego: EgoState, stamp_ns: int) -> None:
        """/clock and the odometry alone, stamped ``stamp_ns`` (a tick without a plan)."""
        self.clock.publish(Clock(clock=conv.to_time(stamp_ns)))
        self.odom.publish(conv.odometry(ego, stamp_ns, self.odom_frame, self.base_frame))

    def publish_sensors(
        self, images: dict[str, np.ndarray] | None, stamp_ns: int, command: str, instruction: str
    ) -> None:
        """Command, instruction, then each camera's camera_info and image ((H, W, 3) uint8 RGB per camera
        name; ``images=None``: camera_info only), stamped ``stamp_ns``."""
        self.command.publish(String(data=command))
        self.instruction.publish(String(data=instruction))
        if images is not None:
            missing = [c for c in self.rig.names if c not in images]
            if missing:
                raise ValueError(f"images: no image for rig camera(s) {missing}; got {sorted(images)}")
        for cam in self.rig.cameras:
            self.infos[cam.name].publish(conv.camera_info(cam, stamp_ns))
            if images is None:
                continue
            frame_id = optical_frame(cam.name)
            if self.raw:
                msg = conv.raw_image(images[cam.name], stamp_ns, frame_id, "rgb8")
            else:
                msg = conv.compressed_image(images[cam.name], stamp_ns, frame_id, "jpeg", self.jpeg_quality)
            self.images[cam.name].publish(msg)

    def sensors_matched(self, count: int = 1) -> bool:
        """Whether the odometry and every camera's images have at least ``count`` matched subscribers."""
        return all(p.get_subscription_count() >= count for p in (self.odom, *self.images.values()))
