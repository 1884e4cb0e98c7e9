"""REP-103 <-> CARLA frame conversion, checked against the real carla package's own transform matrices."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

carla = pytest.importorskip("carla")

from wamdiff_ros.carla import frames as fr  # noqa: E402
from wamdiff_ros.geometry import wrap_angle  # noqa: E402
from wamdiff_ros.rig import load_rig  # noqa: E402

coord = st.floats(-2000, 2000, allow_nan=False)
angle = st.floats(-180, 180, allow_nan=False)
pitch = st.floats(-89, 89, allow_nan=False)


def make_tf(x, y, z, p, yw, r):
    return carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=p, yaw=yw, roll=r))


@settings(max_examples=200, deadline=None)
@given(coord, coord, coord, pitch, angle, angle)
def test_transform_round_trip_and_agrees_with_carla_matrix(x, y, z, p, yw, r):
    tf = make_tf(x, y, z, p, yw, r)
    position, rpy = fr.transform_to_ros(tf)
    # CARLA's own matrix, mirrored into ROS axes, equals the REP-103 pose we computed.
    m = fr.transform_matrix_ros(tf)
    np.testing.assert_allclose(m[:3, :3], fr.rpy_matrix(rpy), atol=2e-5)
    np.testing.assert_allclose(m[:3, 3], position, atol=1e-3)
    back = fr.ros_to_transform(position, rpy)
    assert abs(back.location.x - tf.location.x) < 1e-3 and abs(back.location.y - tf.location.y) < 1e-3
    assert abs(back.location.z - tf.location.z) < 1e-3
    np.testing.assert_allclose(np.array(back.get_matrix())[:3, :3], np.array(tf.get_matrix())[:3, :3], atol=2e-5)


@settings(max_examples=100, deadline=None)
@given(coord, coord, coord)
def test_location_round_trip(x, y, z):
    loc = carla.Location(x=x, y=y, z=z)
    p = fr.location_to_ros(loc)
    assert p[1] == pytest.approx(-loc.y)
    back = fr.ros_to_location(p)
    assert (back.x, back.y, back.z) == pytest.approx((loc.x, loc.y, loc.z), abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(coord, coord, st.floats(-math.pi + 1e-6, math.pi, allow_nan=False))
def test_pose2d_round_trip(x, y, yaw):
    tf = fr.pose2d_to_transform((x, y, yaw), z=0.3)
    back = fr.transform_to_pose2d(tf)
    np.testing.assert_allclose(back[:2], [x, y], atol=2e-3)
    assert abs(float(wrap_angle(back[2] - yaw))) < 1e-5


def test_known_orientations():
    # CARLA yaw +90° faces CARLA +y, i.e. to the right: ROS yaw -π/2.
    assert fr.transform_to_pose2d(make_tf(1, 2, 0, 0, 90, 0)) == pytest.approx([1, -2, -math.pi / 2])
    # Nose up is positive pitch in CARLA and negative pitch in ROS; roll keeps its sign.
    assert fr.rotation_to_rpy(10.0, 0.0, 5.0) == pytest.approx([math.radians(5), -math.radians(10), 0.0])
    assert fr.rpy_to_rotation_angles([0.1, 0.2, 0.3]) == pytest.approx(
        (-math.degrees(0.2), -math.degrees(0.3), math.degrees(0.1))
    )


def test_camera_mount_from_the_rig_looks_where_the_rig_says():
    rig = load_rig("rigs/default.yaml")
    base_in_actor = np.array([-1.4, 0.0, 0.0])
    for cam in rig.cameras:
        tf = fr.camera_transform(cam, base_in_actor)
        m = np.array(tf.get_matrix())
        # Position: base_link offset + mount, y mirrored.
        expected = base_in_actor + np.asarray(cam.position)
        assert (tf.location.x, tf.location.y, tf.location.z) == pytest.approx(
            (expected[0], -expected[1], expected[2]), abs=1e-4
        )
        # The camera's forward axis (CARLA x) points where the rig's body x points, in mirrored axes.
        np.testing.assert_allclose(fr.MIRROR @ m[:3, 0], cam.rotation[:, 0], atol=1e-5)
        np.testing.assert_allclose(fr.MIRROR @ m[:3, 2], cam.rotation[:, 2], atol=1e-5)
    left = fr.camera_transform(rig.camera("front_left"), base_in_actor)
    assert left.location.y < 0 and left.rotation.yaw == pytest.approx(-60.0, abs=0.01)  # left = CARLA -y, yaw CCW
    front = fr.camera_transform(rig.camera("front"), base_in_actor)
    assert front.rotation.pitch == pytest.approx(-math.degrees(0.05), abs=1e-4)  # looks down


def test_velocities_and_yaw_rate():
    # Driving along CARLA +y (heading 90°, ROS yaw -π/2) at 10 m/s, turning right at 10°/s.
    actor_yaw = -math.pi / 2
    v, yaw_rate = fr.base_link_velocity(
        carla.Vector3D(0.0, 10.0, 0.0), carla.Vector3D(0.0, 0.0, 10.0), actor_yaw, (-1.4, 0.0, 0.0)
    )
    assert yaw_rate == pytest.approx(-math.radians(10.0))
    # the rear axle (1.4 m behind the origin) swings left while the car turns right
    assert v == pytest.approx([10.0, 1.4 * math.radians(10.0)], abs=1e-6)
    v0, _ = fr.base_link_velocity(carla.Vector3D(0.0, 10.0, 0.0), carla.Vector3D(0, 0, 0), actor_yaw, (0, 0, 0))
    assert v0 == pytest.approx([10.0, 0.0], abs=1e-9)
    assert fr.vector_in_base_link(carla.Vector3D(0.0, -2.0, 0.0), actor_yaw) == pytest.approx([-2.0, 0.0], abs=1e-9)
    assert fr.angular_velocity_to_ros(0.0, 0.0, 90.0)[2] == pytest.approx(-math.pi / 2)


def test_base_link_pose_adds_the_offset_along_the_heading():
    tf = make_tf(10.0, -5.0, 0.0, 0.0, -90.0, 0.0)  # facing CARLA -y = ROS +y (yaw +π/2)
    pose = fr.base_link_pose(tf, (-1.4, 0.0, 0.0))
    assert pose == pytest.approx([10.0, 5.0 - 1.4, math.pi / 2])
