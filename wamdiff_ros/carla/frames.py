"""The one place where CARLA's frame meets REP-103: poses, camera mounts, velocities, and back.

CARLA (Unreal Engine) is left-handed: x forward, y right, z up, metres; ``carla.Rotation`` holds
degrees, yaw turning x toward y (clockwise seen from above), positive pitch raising the nose and
positive roll lowering the right side. ROS (REP-103) is right-handed: x forward, y left, z up,
radians, yaw counter-clockwise.

The map is CARLA's world mirrored in y, ``p_ros = M·p_carla`` with ``M = diag(1, -1, 1)``; a rotation
matrix conjugates, ``R_ros = M·R_carla·M``. With the rig's convention ``R = Rz(yaw)·Ry(pitch)·Rx(roll)``
that gives ``roll = +roll_c``, ``pitch = -pitch_c``, ``yaw = -yaw_c`` (radians). Linear velocities and
accelerations are vectors (``M·v``); angular velocity is a pseudo-vector in deg/s (``-M·ω``, so the yaw
rate is ``-ω_z``).

base_link (the rear axle on the ground) sits at ``base_in_actor`` in the vehicle actor's frame (the
actor's origin is the bounding-box centre on the ground), given in ROS axes of the actor frame.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from wamdiff_ros.geometry import compose, rotation, wrap_angle

if TYPE_CHECKING:
    import carla

    from wamdiff_ros.rig import CameraSpec

MIRROR = np.diag([1.0, -1.0, 1.0])
"""CARLA world/actor axes <-> ROS axes (its own inverse)."""


def _carla():
    try:
        import carla
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError(
            "the CARLA client package 'carla' is needed here (pip install carla==0.9.16, matching the server)"
        ) from e
    return carla


def rpy_matrix(rpy) -> np.ndarray:
    """3×3 rotation ``Rz(yaw)·Ry(pitch)·Rx(roll)`` of ROS ``(roll, pitch, yaw)`` [rad] (the rig's convention)."""
    r, p, y = (float(v) for v in rpy)
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_to_rpy(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """CARLA ``Rotation`` angles [deg] -> ROS ``(roll, pitch, yaw)`` [rad], yaw wrapped to (-π, π]."""
    return np.array([math.radians(roll_deg), -math.radians(pitch_deg), float(wrap_angle(-math.radians(yaw_deg)))])


def rpy_to_rotation_angles(rpy) -> tuple[float, float, float]:
    """ROS ``(roll, pitch, yaw)`` [rad] -> CARLA ``(pitch, yaw, roll)`` [deg]."""
    r, p, y = (float(v) for v in rpy)
    return -math.degrees(p), -math.degrees(y), math.degrees(r)


def vector_to_ros(x: float, y: float, z: float) -> np.ndarray:
    """A CARLA location, velocity or acceleration (x, y, z) -> ROS axes (3,)."""
    return np.array([float(x), -float(y), float(z)])


def angular_velocity_to_ros(x: float, y: float, z: float) -> np.ndarray:
    """CARLA angular velocity [deg/s] -> ROS angular velocity [rad/s] (a pseudo-vector: ``-M·ω``)."""
    return -np.radians(np.array([float(x), -float(y), float(z)]))


# ---- carla objects -------------------------------------------------------------------------------


def location_to_ros(location: carla.Location | carla.Vector3D) -> np.ndarray:
    return vector_to_ros(location.x, location.y, location.z)


def ros_to_location(position) -> carla.Location:
    x, y, z = (float(v) for v in position)
    return _carla().Location(x=x, y=-y, z=z)


def transform_to_ros(transform: carla.Transform) -> tuple[np.ndarray, np.ndarray]:
    """``carla.Transform`` -> ROS ``position`` (3,) [m] and ``rpy`` (3,) [rad]."""
    r = transform.rotation
    return location_to_ros(transform.location), rotation_to_rpy(r.pitch, r.yaw, r.roll)


def ros_to_transform(position, rpy=(0.0, 0.0, 0.0)) -> carla.Transform:
    """ROS ``position`` (3,) [m] and ``rpy`` (3,) [rad] -> ``carla.Transform``."""
    carla = _carla()
    pitch, yaw, roll = rpy_to_rotation_angles(rpy)
    return carla.Transform(ros_to_location(position), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))


def transform_to_pose2d(transform: carla.Transform) -> np.ndarray:
    """Planar ROS pose ``(x, y, yaw)`` of a CARLA transform (the yaw only; pitch and roll are dropped)."""
    return np.array(
        [transform.location.x, -transform.location.y, float(wrap_angle(-math.radians(transform.rotation.yaw)))]
    )


def pose2d_to_transform(pose, z: float = 0.0) -> carla.Transform:
    """Planar ROS pose ``(x, y, yaw)`` at height ``z`` -> ``carla.Transform`` (level)."""
    x, y, yaw = (float(v) for v in pose)
    return ros_to_transform((x, y, z), (0.0, 0.0, yaw))


def base_link_pose(actor_transform: carla.Transform, base_in_actor) -> np.ndarray:
    """Planar ROS pose of base_link given the actor's transform and base_link's offset in the actor frame."""
    off = np.asarray(base_in_actor, np.float64)
    return compose(transform_to_pose2d(actor_transform), np.array([off[0], off[1], 0.0]))


def base_link_velocity(
    velocity: carla.Vector3D, angular_velocity: carla.Vector3D, actor_yaw: float, base_in_actor
) -> tuple[np.ndarray, float]:
    """Velocity of base_link in base_link axes ``(vx, vy)`` [m/s] and the yaw rate [rad/s].

    ``velocity`` is the actor origin's world velocity and ``angular_velocity`` its world angular
    velocity [deg/s], as CARLA reports them; ``actor_yaw`` the actor's ROS yaw [rad]. The rigid-body
    term ``ω × r`` moves the velocity from the actor origin to base_link.
    """
    v = vector_to_ros(velocity.x, velocity.y, velocity.z)[:2]
    yaw_rate = float(angular_velocity_to_ros(angular_velocity.x, angular_velocity.y, angular_velocity.z)[2])
    off = np.asarray(base_in_actor, np.float64)[:2]
    r_world = rotation(actor_yaw) @ off
    v_base = v + yaw_rate * np.array([-r_world[1], r_world[0]])
    return rotation(actor_yaw).T @ v_base, yaw_rate


def vector_in_base_link(vector: carla.Vector3D, actor_yaw: float) -> np.ndarray:
    """A CARLA world vector (e.g. acceleration) in base_link axes, planar (2,)."""
    return rotation(actor_yaw).T @ vector_to_ros(vector.x, vector.y, vector.z)[:2]


def camera_transform(camera: CameraSpec, base_in_actor=(0.0, 0.0, 0.0)) -> carla.Transform:
    """Mounting transform (relative to the vehicle actor) of a rig camera given in base_link.

    CARLA cameras look along their own +x with z up, the same axes as the rig's camera body frame, so
    the mount is the body pose moved from base_link to the actor origin and mirrored.
    """
    position = np.asarray(base_in_actor, np.float64) + np.asarray(camera.position, np.float64)
    return ros_to_transform(position, camera.rpy)


def transform_matrix_ros(transform: carla.Transform) -> np.ndarray:
    """4×4 homogeneous matrix of a CARLA transform expressed in ROS axes (``M·T_carla·M``)."""
    m = np.array(transform.get_matrix(), np.float64)
    mirror = np.eye(4)
    mirror[:3, :3] = MIRROR
    return mirror @ m @ mirror
