"""The planning cycle without ROS: input synchronisation, validation, fallback and health.

``wamdiff_ros.ros.planner_node`` is a thin rclpy adapter around :class:`PlanningLoop`; everything that
decides what reaches the model and what gets published lives here, so it is unit-tested without a
middleware.
"""

from wamdiff_ros.planning.fallback import comfortable_stop, continue_plan
from wamdiff_ros.planning.loop import CycleOutput, Health, LoopConfig, PlanningLoop
from wamdiff_ros.planning.sync import ApproxTimeSync, SyncSet

__all__ = [
    "ApproxTimeSync",
    "CycleOutput",
    "Health",
    "LoopConfig",
    "PlanningLoop",
    "SyncSet",
    "comfortable_stop",
    "continue_plan",
]
