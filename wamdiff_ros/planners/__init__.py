"""Planners behind one interface (:class:`wamdiff_ros.planners.base.Planner`), one module per family."""
