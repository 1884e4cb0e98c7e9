"""The bridge's ground-truth markers read back by the episode video's decoders, after a CDR round trip
(rclpy serialises, rosbags deserialises, as between the bridge and a recorded bag)."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.geometry import arc_length, compose
from wamdiff_ros.reporting.episode_video import (
    NS_AGENTS,
    NS_EGO,
    NS_LANE_CENTER,
    NS_LANE_EDGE,
    marker_boxes,
    marker_polylines,
    message_key,
)
from wamdiff_ros.ros.scene_markers import MAP_SPACING_M, lane_markers, resample_polyline, scene_markers
from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, LogFrame

pytestmark = pytest.mark.ros


def _through_a_bag(msg):
    return rt.typestore().deserialize_cdr(serialize_message(msg), "visualization_msgs/msg/MarkerArray")


def test_lanes_round_trip_resampled():
    t = np.linspace(0, np.pi / 2, 400)
    arc = np.column_stack([30 * np.sin(t), 30 * (1 - np.cos(t))])  # quarter circle, 47 m
    lanes = [Lane(7, arc, np.full(len(arc), 3.5)), Lane(9, [[0, -3.5], [500, -3.5]], [3.5, 3.5])]
    back = _through_a_bag(lane_markers(lanes, 12_300_000_000))
    assert message_key(back) == 12300
    centers, edges = marker_polylines(back, NS_LANE_CENTER), marker_polylines(back, NS_LANE_EDGE)
    assert len(centers) == 2 and len(edges) == 4
    assert len(centers[1]) == 251  # 500 m every 2 m, both ends
    np.testing.assert_allclose(centers[0][[0, -1]], arc[[0, -1]], atol=1e-6)
    np.testing.assert_allclose(np.hypot(centers[0][:, 0], centers[0][:, 1] - 30), 30, atol=0.02)
    np.testing.assert_allclose(edges[2][:, 1], 0.0 - 3.5 + 1.75, atol=1e-9)  # left edge of the straight lane
    steps = np.diff(arc_length(resample_polyline(arc)))
    assert steps.max() <= MAP_SPACING_M + 1e-9


def test_agents_and_ego_boxes_round_trip():
    agents = Agents(
        ids=[3, 8],
        types=[AgentType.VEHICLE, AgentType.PEDESTRIAN],
        sizes=[[4.5, 1.9], [0.6, 0.6]],
        poses=[[[10.0, 2.0, 0.3]], [[5.0, -4.0, -1.0]]],
        velocities=np.zeros((2, 1, 2)),
        valid=[[True], [False]],
    )
    ego = EgoState(pose=np.array([1.0, 2.0, 0.5]))
    frame = LogFrame(stamp_ns=0, episode="e", ego=ego, agents=agents, route_lane_ids=[])
    back = _through_a_bag(scene_markers(frame, 3_000_000_000, (5.0, 2.0), 1.5))
    np.testing.assert_allclose(marker_boxes(back, NS_AGENTS), [[10.0, 2.0, 0.3, 4.5, 1.9]], atol=1e-9)
    (ego_box,) = marker_boxes(back, NS_EGO)
    np.testing.assert_allclose(ego_box[:3], compose(ego.pose, np.array([1.5, 0.0, 0.0])), atol=1e-9)
    np.testing.assert_allclose(ego_box[3:], [5.0, 2.0])
    assert back.markers[0].action == 3  # DELETEALL clears the previous tick first
