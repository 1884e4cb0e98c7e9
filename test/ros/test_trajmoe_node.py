"""The planner node runs a TrajMoE checkpoint on ONNX Runtime in a real rclpy graph: its path is the
eager planner's best vocabulary entry, and its diagnostics name the family."""

from __future__ import annotations

import pytest
import torch

from wamdiff_ros.planners.trajmoe import TrajMoEPlanner
from wamdiff_ros.planners.trajmoe.config import tiny_config
from wamdiff_ros.planners.trajmoe.net import TrajMoENet

from ._family_node import node_plan_matches_eager
from .conftest import RIG

pytestmark = pytest.mark.ros


def test_node_plans_with_trajmoe_on_onnxruntime(graph, tmp_path):
    torch.manual_seed(0)
    model = TrajMoEPlanner(TrajMoENet(tiny_config(rig=RIG.to_dict(), vocab_size=16))).save(tmp_path / "trajmoe")
    assert node_plan_matches_eager(graph, model)["family"] == "trajmoe"
