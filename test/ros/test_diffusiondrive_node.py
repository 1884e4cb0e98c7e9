"""The planner node runs the DiffusionDrive family by ``model_path`` alone, on ONNX Runtime in a real
rclpy graph: its published path equals the eager planner's plan for the same frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from wamdiff_ros.geometry import compose
from wamdiff_ros.models.config import EncoderConfig
from wamdiff_ros.planners import load_planner
from wamdiff_ros.planners.diffusiondrive import DiffusionDrivePlanner
from wamdiff_ros.planners.diffusiondrive.config import tiny_config
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.planner_node import PlannerNode
from wamdiff_ros.types import EgoState, Observation

from .conftest import RIG, Collector, Feeder, values

pytestmark = pytest.mark.ros


def test_node_plans_with_diffusiondrive(graph, tmp_path):
    torch.manual_seed(0)
    enc = EncoderConfig(stem_channels=4, channels=(8,), history=0)
    model = DiffusionDrivePlanner(DiffusionDriveNet(tiny_config(rig=RIG.to_dict(), encoder=enc))).save(tmp_path / "dd")
    params = {
        "model_path": str(model),
        "backend": "onnxruntime",
        "image_format": "raw",
        "input_qos": "default",
        "diagnostics_period_s": 0.2,
        "plan_rate_hz": 50.0,
        "reasoning_mode": "slow",
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
    local = load_planner(model, mode="slow").plan(obs).trajectory.poses
    np.testing.assert_allclose(conv.path_poses(path)[:, :2], compose(ego.pose, local)[:, :2], atol=1e-3)
    ok = collector.diagnostic(lambda d: values(d).get("plans", "0") != "0", what="a status with plans")
    assert values(ok)["family"] == "diffusiondrive"
