"""sim_bridge_node + planner_node closed loop over real topics on the bridge's sim clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from wamdiff_ros.ros.sim_bridge_node import SimBridgeNode

from .conftest import sim_time_planner, wait_until

pytestmark = pytest.mark.ros


def test_short_closed_loop_episode(graph, tmp_path):
    planner = sim_time_planner(graph, tmp_path / "cv")
    metrics_path = tmp_path / "metrics.json"
    bridge = SimBridgeNode(
        context=graph.context,
        parameter_overrides=[
            Parameter("scenarios", value=["highway_sparse"]),
            Parameter("episodes", value=1),
            Parameter("max_duration_s", value=2.0),
            Parameter("trajectory_topic", value="/planner_node/trajectory"),
            Parameter("metrics_path", value=str(metrics_path)),
            Parameter("use_sim_time", value=True),
        ],
    )
    graph.add(bridge)
    published = []
    listener = graph.add(Node("metrics_listener", context=graph.context))
    listener.create_subscription(String, "/sim_bridge_node/episode_metrics", published.append, 10)
    assert bridge.wait_for_planner(timeout=10.0)
    (record,) = bridge.run()
    assert record["ticks"] == 21 and record["reason"] == "timeout"  # cut at max_duration_s
    assert record["trajectory_timeouts"] == 0 and record["trajectories_rejected"] == 0
    assert not record["collision"]
    assert record["mean_speed"] > 5.0  # the constant-velocity plan kept the vehicle moving
    assert 0.0 < record["route_completion"] < 1.0
    assert np.isfinite(record["latency_ms_p99"])
    written = json.loads(metrics_path.read_text())
    assert written["episodes"][0]["episode"] == record["episode"]
    assert written["summary"]["all"]["episodes"] == 1
    assert planner._loop.counts["plans"] >= 20  # every tick was planned on the sim clock
    assert planner._loop.counts["fallback_stop"] == 0
    msg = wait_until(lambda: published[0] if published else None, 5.0, what="episode metrics message")
    assert json.loads(msg.data)["episode"] == record["episode"]
