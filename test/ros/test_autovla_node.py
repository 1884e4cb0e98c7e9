"""The planner node runs an AutoVLA checkpoint on ONNX Runtime in a real rclpy graph (its path is the
eager planner's plan)."""

from __future__ import annotations

import pytest
import torch

from wamdiff_ros.planners.autovla import AutoVLAPlanner
from wamdiff_ros.planners.autovla.config import tiny_config
from wamdiff_ros.planners.autovla.net import AutoVLANet

from ._family_node import node_plan_matches_eager
from .conftest import RIG

pytestmark = pytest.mark.ros


def test_node_plans_with_an_autovla_checkpoint(graph, tmp_path):
    torch.manual_seed(0)
    model = AutoVLAPlanner(AutoVLANet(tiny_config(rig=RIG.to_dict()))).save(tmp_path / "autovla")
    status = node_plan_matches_eager(graph, model, plan_rate_hz=20.0)
    assert status["family"] == "autovla"
