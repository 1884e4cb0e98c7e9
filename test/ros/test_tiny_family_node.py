"""The planner node runs a family it has never heard of: the tiny family of test/tiny_family.py,
registered in this process, on ONNX Runtime in a real rclpy graph (its plans equal the eager planner's)."""

from __future__ import annotations

import pytest
from tiny_family import FAMILY, save_tiny

from ._family_node import node_plan_matches_eager
from .conftest import RIG

pytestmark = pytest.mark.ros


def test_node_plans_with_a_family_registered_in_process(graph, tmp_path):
    status = node_plan_matches_eager(graph, save_tiny(tmp_path / "tiny", RIG))
    assert status["family"] == FAMILY
