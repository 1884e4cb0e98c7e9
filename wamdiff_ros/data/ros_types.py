"""Standard ROS 2 messages built with rosbags' typestore (no rclpy): headers, images, camera info,
odometry, strings and the clock, as written to bags and read back.

The typestore is ROS 2 Humble's (the oldest distro the package supports); the definitions of every
type used here are identical, with identical type hashes, in Humble, Jazzy and Kilted.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from wamdiff_ros.data import images as imgs
from wamdiff_ros.geometry import quaternion_yaw
from wamdiff_ros.rig import CameraSpec
from wamdiff_ros.stamps import split_ns, time_ns
from wamdiff_ros.types import EgoState

MAP_FRAME = "map"
BASE_FRAME = "base_link"


@lru_cache(maxsize=1)
def typestore():
    """ROS 2 Humble typestore with the ``wamdiff_msgs`` ground-truth types registered."""
    from rosbags.typesys import Stores, get_typestore

    from wamdiff_ros.data.truth_msgs import register

    store = get_typestore(Stores.ROS2_HUMBLE)
    register(store)
    return store


def optical_frame(camera: str) -> str:
    """``header.frame_id`` of a camera's images and camera_info."""
    return f"{camera}_optical"


def to_time(stamp_ns: int):
    """Integer nanoseconds (>= 0) -> ``builtin_interfaces/Time``, exactly."""
    sec, nanosec = split_ns(stamp_ns)
    return typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str):
    return typestore().types["std_msgs/msg/Header"](stamp=to_time(stamp_ns), frame_id=frame_id)


def compressed_image(image: np.ndarray, stamp_ns: int, camera: str, fmt: str = "jpeg", quality: int = 90):
    """``sensor_msgs/CompressedImage`` of an RGB image, JPEG or PNG."""
    return compressed_image_msg(imgs.encode_compressed(image, fmt, quality), stamp_ns, camera, fmt)


def compressed_image_msg(data: bytes, stamp_ns: int, camera: str, fmt: str = "jpeg"):
    """``sensor_msgs/CompressedImage`` around already encoded JPEG or PNG ``data``."""
    return typestore().types["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns, optical_frame(camera)),
        format=imgs.compressed_format_string(fmt),
        data=np.frombuffer(data, dtype=np.uint8),
    )


def raw_image(image: np.ndarray, stamp_ns: int, camera: str, encoding: str = "rgb8"):
    """``sensor_msgs/Image`` of an RGB image in ``encoding``."""
    data, w, h, step = imgs.encode_raw(image, encoding)
    return typestore().types["sensor_msgs/msg/Image"](
        header=header(stamp_ns, optical_frame(camera)),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.frombuffer(data, dtype=np.uint8),
    )


def decode_image_msg(msg, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB image from a deserialised ``CompressedImage`` or ``Image`` (told apart by their fields)."""
    if hasattr(msg, "format"):
        return imgs.decode_compressed(msg.data, msg.format, expected_size)
    return imgs.decode_raw(msg.data, msg.width, msg.height, msg.encoding, msg.step, expected_size)


def camera_info(camera: CameraSpec, stamp_ns: int):
    """``sensor_msgs/CameraInfo`` of an ideal pinhole camera: plumb_bob with zero distortion, P = [K|0]."""
    k = camera.K
    p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    roi = typestore().types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return typestore().types["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, optical_frame(camera.name)),
        height=int(camera.height),
        width=int(camera.width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(9).astype(np.float64),
        r=np.eye(3).reshape(9),
        p=p.reshape(12).astype(np.float64),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def odometry(ego: EgoState, stamp_ns: int):
    """``nav_msgs/Odometry`` (REP-105): pose of base_link in map, twist in base_link."""
    t = typestore().types
    qz, qw = np.sin(ego.pose[2] / 2), np.cos(ego.pose[2] / 2)
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=float(ego.pose[0]), y=float(ego.pose[1]), z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=float(qz), w=float(qw)),
    )
    twist = t["geometry_msgs/msg/Twist"](
        linear=t["geometry_msgs/msg/Vector3"](x=float(ego.velocity[0]), y=float(ego.velocity[1]), z=0.0),
        angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(ego.yaw_rate)),
    )
    return t["nav_msgs/msg/Odometry"](
        header=header(stamp_ns, MAP_FRAME),
        child_frame_id=BASE_FRAME,
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def ego_from_odometry(msg) -> EgoState:
    """EgoState from ``nav_msgs/Odometry`` (planar; acceleration is not in Odometry and reads as 0)."""
    q = msg.pose.pose.orientation
    yaw = quaternion_yaw(q.x, q.y, q.z, q.w)
    p, v = msg.pose.pose.position, msg.twist.twist
    return EgoState(
        pose=np.array([p.x, p.y, yaw]),
        velocity=np.array([v.linear.x, v.linear.y]),
        yaw_rate=v.angular.z,
        stamp_ns=time_ns(msg.header.stamp),
    )


def string(text: str):
    return typestore().types["std_msgs/msg/String"](data=str(text))


def clock(stamp_ns: int):
    return typestore().types["rosgraph_msgs/msg/Clock"](clock=to_time(stamp_ns))
