"""ROS 2 adapters: the only part of wamdiff_ros that imports rclpy and message packages."""
