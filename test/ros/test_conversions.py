"""Message conversions whose exact wire form matters: the trajectory the planner node publishes serialized."""

from __future__ import annotations

import numpy as np
import pytest
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message

from wamdiff_ros.ros import conversions as conv

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("frame_id", ["map", "odom", "base_link", "a", ""])
@pytest.mark.parametrize("n", [0, 1, 8, 13])
def test_path_cdr_is_the_path_message_as_rclpy_serializes_it(frame_id, n):
    rng = np.random.default_rng(n)
    poses = rng.normal(0.0, 30.0, (n, 3))
    stamp = float(rng.uniform(0.0, 1e5))
    msg = conv.path(poses, stamp, 0.5, frame_id)
    data = conv.path_cdr(poses, stamp, 0.5, frame_id)
    assert len(data) == len(serialize_message(msg))  # padding bytes may differ: rclpy leaves them unset
    assert deserialize_message(data, Path) == msg


def test_path_cdr_rejects_a_negative_stamp():
    with pytest.raises(ValueError, match="stamp"):
        conv.path_cdr(np.zeros((2, 3)), -1.0, 0.5, "map")
