"""The planner node runs the DiffusionDrive family by ``model_path`` alone, on ONNX Runtime in a real
rclpy graph: its published path equals the eager planner's plan (the selector, slow mode) for the same
frame."""

from __future__ import annotations

import pytest
import torch

from wamdiff_ros.models.config import EncoderConfig
from wamdiff_ros.planners.diffusiondrive import DiffusionDrivePlanner
from wamdiff_ros.planners.diffusiondrive.config import tiny_config
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet

from ._family_node import node_plan_matches_eager
from .conftest import RIG

pytestmark = pytest.mark.ros


def test_node_plans_with_diffusiondrive(graph, tmp_path):
    torch.manual_seed(0)
    enc = EncoderConfig(stem_channels=4, channels=(8,), history=0)
    model = DiffusionDrivePlanner(DiffusionDriveNet(tiny_config(rig=RIG.to_dict(), encoder=enc))).save(tmp_path / "dd")
    assert node_plan_matches_eager(graph, model, mode="slow", atol=1e-3)["family"] == "diffusiondrive"
