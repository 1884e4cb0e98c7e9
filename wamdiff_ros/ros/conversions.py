"""rclpy messages <-> the package's numpy types.

Decoding reuses :mod:`wamdiff_ros.data.ros_types` and :mod:`wamdiff_ros.data.images` (they work on any
object with the message's fields, rclpy's included), so bags and live topics are read by one code path.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Vector3
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from wamdiff_ros.data import images as imgs
from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.geometry import quaternion_yaw
from wamdiff_ros.rig import CameraSpec
from wamdiff_ros.stamps import join_ns, seconds_to_ns, split_ns
from wamdiff_ros.types import EgoState

QUATERNION_NORM_TOLERANCE = 0.05
"""An orientation quaternion whose norm differs from 1 by more than this is rejected as malformed."""


def to_time(stamp_ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> ``builtin_interfaces/Time``, exactly."""
    sec, nanosec = split_ns(stamp_ns)
    return Time(sec=sec, nanosec=nanosec)


def yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


@dataclass(frozen=True)
class PlanarOdometry:
    """The fields of a ``nav_msgs/Odometry`` that planning uses (covariances are left out).

    Attributes:
        stamp_ns: header stamp [ns].
        frame_id, child_frame_id: the odometry frame and the body frame.
        x, y: position of the body in ``frame_id`` [m].
        q: orientation quaternion ``(x, y, z, w)``, as received (not yet checked).
        vx, vy: linear velocity in ``child_frame_id`` [m/s]; yaw_rate: angular z [rad/s].
    """

    stamp_ns: int
    frame_id: str
    child_frame_id: str
    x: float
    y: float
    q: tuple[float, float, float, float]
    vx: float
    vy: float
    yaw_rate: float


CDR_STAMP_END = 12
"""Bytes of a serialized message with a std_msgs/Header first: 4 of CDR encapsulation, then the stamp."""


class _CdrReader:
    """A cursor over one serialized message (CDR, either byte order; alignment counts from after the
    4-byte encapsulation header). Raises IndexError / struct.error / UnicodeDecodeError when truncated."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 4
        self.order = "<" if data[1] & 1 else ">"

    def unpack(self, fmt: str, align: int) -> tuple:
        self.at += -(self.at - 4) % align
        values = struct.unpack_from(self.order + fmt, self.data, self.at)
        self.at += struct.calcsize(self.order + fmt)
        return values

    def string(self) -> str:
        (n,) = self.unpack("I", 4)
        self.at += n
        return self.data[self.at - n : self.at - 1].decode()

    def sequence(self) -> memoryview:
        """A uint8 sequence, as a view into the message (no copy)."""
        (n,) = self.unpack("I", 4)
        if self.at + n > len(self.data):
            raise struct.error(f"a sequence of {n} bytes runs past the message")
        self.at += n
        return memoryview(self.data)[self.at - n : self.at]

    def header(self) -> tuple[int, str]:
        """std_msgs/Header: ``(stamp [ns], frame_id)``."""
        sec, nanosec = self.unpack("iI", 4)
        return join_ns(sec, nanosec), self.string()


def read_odometry(data: bytes) -> PlanarOdometry:
    """:class:`PlanarOdometry` from a serialized ``nav_msgs/Odometry`` (CDR, either byte order).

    The planner node takes odometry serialized: rclpy's conversion of the whole message (two 36-double
    covariances, nested messages) cost 0.24 ms per message there, this 8 µs. ValueError if truncated.
    """
    try:
        r = _CdrReader(data)
        stamp, frame_id = r.header()
        child = r.string()
        x, y, _, qx, qy, qz, qw = r.unpack("7d", 8)
        r.unpack("36d", 8)  # pose covariance
        vx, vy, _, _, _, wz = r.unpack("6d", 8)
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"Odometry: {len(data)} bytes are not a serialized nav_msgs/Odometry ({err})") from err
    return PlanarOdometry(stamp, frame_id, child, x, y, (qx, qy, qz, qw), vx, vy, wz)


def read_string(data: bytes) -> str:
    """``data`` of a serialized ``std_msgs/String``; ValueError if truncated or not UTF-8."""
    try:
        return _CdrReader(data).string()
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"String: {len(data)} bytes are not a serialized std_msgs/String ({err})") from err


@dataclass(frozen=True)
class CompressedImageFields:
    """A serialized ``sensor_msgs/CompressedImage``, read without copying its bytes (``data`` is a view into
    the serialized message); :func:`decode_image` takes it as it takes the message (same field names)."""

    stamp_ns: int
    frame_id: str
    format: str
    data: memoryview


@dataclass(frozen=True)
class RawImageFields:
    """A serialized ``sensor_msgs/Image``, read as :class:`CompressedImageFields` is."""

    stamp_ns: int
    frame_id: str
    width: int
    height: int
    encoding: str
    step: int
    data: memoryview


def read_image(data: bytes, compressed: bool) -> CompressedImageFields | RawImageFields:
    """The fields of a serialized ``CompressedImage`` (``compressed``) or ``Image`` (CDR, either byte order).

    The planner node takes its images this way: rclpy's conversion copied each into a Python message,
    30–80 µs per image there. ValueError if truncated.
    """
    kind = "CompressedImage" if compressed else "Image"
    try:
        r = _CdrReader(data)
        stamp, frame_id = r.header()
        if compressed:
            fmt = r.string()
            return CompressedImageFields(stamp, frame_id, fmt, r.sequence())
        height, width = r.unpack("II", 4)
        encoding = r.string()
        r.unpack("B", 1)  # is_bigendian: 8-bit encodings only
        (step,) = r.unpack("I", 4)
        return RawImageFields(stamp, frame_id, width, height, encoding, step, r.sequence())
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"{kind}: {len(data)} bytes are not a serialized sensor_msgs/{kind} ({err})") from err


def ego_from_odometry(odom: PlanarOdometry) -> EgoState:
    """EgoState (planar) from :class:`PlanarOdometry`; raises ValueError on a malformed orientation.

    Odometry carries no acceleration; it reads 0 here (the planning loop estimates it from the
    velocity history).
    """
    qx, qy, qz, qw = odom.q
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if math.isfinite(norm) and abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ValueError(f"Odometry.pose.orientation: expected a unit quaternion, got norm {norm:.3f}")
    yaw = quaternion_yaw(qx, qy, qz, qw)
    return EgoState(
        pose=[odom.x, odom.y, yaw], velocity=[odom.vx, odom.vy], yaw_rate=odom.yaw_rate, stamp_ns=odom.stamp_ns
    )


def odometry(ego: EgoState, stamp_ns: int, frame_id: str = "map", child_frame_id: str = "base_link") -> Odometry:
    """``nav_msgs/Odometry`` of ``ego``: pose of base_link in ``frame_id``, twist in base_link."""
    msg = Odometry()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    msg.child_frame_id = child_frame_id
    msg.pose.pose = Pose(
        position=Point(x=float(ego.pose[0]), y=float(ego.pose[1]), z=0.0), orientation=yaw_quaternion(ego.pose[2])
    )
    msg.twist.twist.linear = Vector3(x=float(ego.velocity[0]), y=float(ego.velocity[1]), z=0.0)
    msg.twist.twist.angular = Vector3(x=0.0, y=0.0, z=float(ego.yaw_rate))
    return msg


def decode_image(msg: Image | CompressedImage, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """H×W×3 uint8 RGB from a ``sensor_msgs/Image`` or ``CompressedImage``; ValueError if malformed."""
    return rt.decode_image_msg(msg, expected_size)


def compressed_image(
    image: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "jpeg", quality: int = 90
) -> CompressedImage:
    msg = CompressedImage()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    msg.format = imgs.compressed_format_string(fmt)
    msg.data = imgs.encode_compressed(image, fmt, quality)
    return msg


def raw_image(image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8") -> Image:
    data, w, h, step = imgs.encode_raw(image, encoding)
    msg = Image()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = h, w, encoding, 0, step
    msg.data = data
    return msg


def camera_info(camera: CameraSpec, stamp_ns: int, frame_id: str | None = None) -> CameraInfo:
    """``sensor_msgs/CameraInfo`` of an ideal pinhole camera of the rig (plumb_bob, no distortion)."""
    k = camera.K
    msg = CameraInfo()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id or rt.optical_frame(camera.name))
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in k.reshape(9)]
    msg.r = [float(v) for v in np.eye(3).reshape(9)]
    msg.p = [float(v) for v in np.concatenate([k, np.zeros((3, 1))], axis=1).reshape(12)]
    msg.roi = RegionOfInterest()
    return msg


def pose_stamps_ns(stamp_ns: int, dt: float, count: int) -> list[int]:
    """Stamps [ns] of a trajectory's ``count`` poses: ``stamp_ns + (k + 1)·dt`` for k = 0, 1, …"""
    dt_ns = seconds_to_ns(dt)
    return [stamp_ns + (k + 1) * dt_ns for k in range(count)]


def path(poses: np.ndarray, stamp_ns: int, dt: float, frame_id: str) -> Path:
    """``nav_msgs/Path``: header stamped ``stamp_ns`` exactly, pose k (0-based) of ``poses`` (T, 3)
    stamped ``stamp_ns + (k + 1)·dt``."""
    poses = np.asarray(poses, np.float64)
    msg = Path()
    msg.header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    for (x, y, yaw), t in zip(poses, pose_stamps_ns(stamp_ns, dt, len(poses))):
        ps = PoseStamped()
        ps.header = Header(stamp=to_time(t), frame_id=frame_id)
        ps.pose = Pose(position=Point(x=float(x), y=float(y), z=0.0), orientation=yaw_quaternion(float(yaw)))
        msg.poses.append(ps)
    return msg


def path_cdr(poses: np.ndarray, stamp_ns: int, dt: float, frame_id: str) -> bytes:
    """:func:`path`, serialized as rclpy would (little-endian CDR), for ``Publisher.publish(bytes)``.

    The planner node publishes its trajectory this way: building the rclpy message and converting it
    to C cost 0.19 ms offline, this 35 µs (tests check rclpy reads the bytes back as :func:`path`).
    """
    fid = frame_id.encode() + b"\0"
    out = bytearray(b"\x00\x01\x00\x00")  # CDR_LE encapsulation; alignment counts from after it

    def header(t: int) -> None:
        out.extend(b"\0" * (-(len(out) - 4) % 4))
        out.extend(struct.pack("<iII", *split_ns(t), len(fid)))
        out.extend(fid)

    header(stamp_ns)
    rows = np.asarray(poses, np.float64).tolist()
    out.extend(b"\0" * (-(len(out) - 4) % 4))
    out.extend(struct.pack("<I", len(rows)))
    for (x, y, yaw), t in zip(rows, pose_stamps_ns(stamp_ns, dt, len(rows))):
        header(t)
        out.extend(b"\0" * (-(len(out) - 4) % 8))
        out.extend(struct.pack("<7d", x, y, 0.0, 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)))
    return bytes(out)


def path_poses(msg: Path) -> np.ndarray:
    """(T, 3) ``(x, y, yaw)`` of a planar ``nav_msgs/Path``."""
    out = np.zeros((len(msg.poses), 3))
    for k, ps in enumerate(msg.poses):
        q = ps.pose.orientation
        out[k] = (
            ps.pose.position.x,
            ps.pose.position.y,
            quaternion_yaw(q.x, q.y, q.z, q.w),
        )
    return out


def candidate_markers(
    candidates: np.ndarray, scores: np.ndarray, origin: np.ndarray, stamp_ns: int, frame_id: str, ns: str = "candidates"
) -> MarkerArray:
    """One LINE_STRIP per candidate (K, T, 3), starting at ``origin`` (3,) in ``frame_id``; the best
    scored is green and drawn wider, the others grey with opacity by score. A DELETEALL marker first
    clears the previous cycle's set."""
    candidates = np.asarray(candidates, np.float64).reshape(-1, *np.shape(candidates)[-2:])
    scores = np.asarray(scores, np.float64).reshape(-1)
    header = Header(stamp=to_time(stamp_ns), frame_id=frame_id)
    out = MarkerArray()
    out.markers.append(Marker(header=header, ns=ns, action=Marker.DELETEALL))
    if not len(candidates):
        return out
    if len(scores) != len(candidates):
        scores = np.zeros(len(candidates))
    best = int(np.argmax(scores))
    span = float(np.ptp(scores)) or 1.0
    origin_pt = Point(x=float(origin[0]), y=float(origin[1]), z=0.0)
    for k, traj in enumerate(candidates):
        m = Marker(header=header, ns=ns, id=k, type=Marker.LINE_STRIP, action=Marker.ADD)
        m.pose.orientation.w = 1.0
        m.points = [origin_pt] + [Point(x=float(x), y=float(y), z=0.0) for x, y, _ in traj]
        if k == best:
            m.scale.x, m.color = 0.3, ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0)
        else:
            alpha = 0.2 + 0.6 * (scores[k] - scores.min()) / span
            m.scale.x, m.color = 0.1, ColorRGBA(r=0.6, g=0.6, b=0.6, a=float(alpha))
        out.markers.append(m)
    return out


def diagnostic_array(
    stamp_ns: int, name: str, hardware_id: str, level: int, message: str, values: dict[str, str]
) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=bytes([int(level)]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=to_time(stamp_ns)), status=[status])
