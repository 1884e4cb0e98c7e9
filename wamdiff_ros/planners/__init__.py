"""Planners behind one contract (:class:`wamdiff_ros.planners.base.Planner`), one folder per family,
loaded by :func:`load_planner`."""

from wamdiff_ros.planners.base import Planner, RigMismatchError, families, load_planner, register

__all__ = ["Planner", "RigMismatchError", "families", "load_planner", "register"]
