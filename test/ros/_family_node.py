"""One plan of a checkpoint through the real planner node (ONNX Runtime), for the family node tests."""

from __future__ import annotations

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from wamdiff_ros.geometry import compose
from wamdiff_ros.planners import load_planner
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.planner_node import PlannerNode
from wamdiff_ros.types import EgoState, Observation

from .conftest import Collector, Feeder, values


def node_plan_matches_eager(
    graph, model, plan_rate_hz: float = 50.0, mode: str = "adaptive", atol: float = 1e-4
) -> dict:
    """Start the planner node on ``model`` (ONNX Runtime, reasoning ``mode``), feed one frame, check that
    its path is the eager planner's plan in the map frame (to ``atol`` m); returns the first diagnostic
    status with plans (key -> value)."""
    params = {
        "model_path": str(model),
        "backend": "onnxruntime",
        "image_format": "raw",
        "input_qos": "default",
        "diagnostics_period_s": 0.2,
        "plan_rate_hz": plan_rate_hz,
        "reasoning_mode": mode,
    }
    node = PlannerNode(context=graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    graph.add(node)
    feeder = graph.add(Feeder(graph.context, raw=True))
    collector = graph.add(Collector(graph.context))
    feeder.wait_connected()
    ego = EgoState(pose=[10.0, 5.0, 0.3], velocity=[8.0, 0.0])
    t = feeder.send(ego=ego)
    path = collector.path_for(t)
    obs = Observation(images=dict(feeder.frame), ego=ego, stamp_ns=t)
    eager = load_planner(model)
    eager.set_mode(mode)
    local = eager.plan(obs).trajectory.poses
    np.testing.assert_allclose(conv.path_poses(path)[:, :2], compose(ego.pose, local)[:, :2], atol=atol)
    ok = collector.diagnostic(lambda d: values(d).get("plans", "0") != "0", what="a status with plans")
    return values(ok)
