"""wamdiff_ros: end-to-end driving planners for ROS 2 vehicle computers.

The core (everything outside :mod:`wamdiff_ros.ros`) never imports rclpy, so it runs, trains and
tests without a ROS installation; the nodes in :mod:`wamdiff_ros.ros` are thin adapters.
"""

__version__ = "0.1.0"
