"""CARLA side of the CARLA bridge: frame conversion, control mapping, routes, leaderboard metrics and the
client session. Nothing here imports rclpy; ``wamdiff_ros.ros.carla_bridge_node`` is the thin ROS node
over it. The ``carla`` client package (0.9.15 / 0.9.16) is imported only where CARLA objects are built.
"""
