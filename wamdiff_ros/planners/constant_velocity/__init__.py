"""Constant-velocity baseline family (see :mod:`.planner`)."""

from wamdiff_ros.planners.constant_velocity.planner import FAMILY, ConstantVelocityPlanner, load

__all__ = ["FAMILY", "ConstantVelocityPlanner", "load"]
