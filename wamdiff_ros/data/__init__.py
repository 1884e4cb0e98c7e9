"""Driving logs as rosbag2 MCAP bags: writing (:mod:`.bag`, :mod:`.collect`), ground-truth messages
(:mod:`.truth_msgs`), standard ROS messages without rclpy (:mod:`.ros_types`), image codecs
(:mod:`.images`) and the training dataset (:mod:`.dataset`). Submodules are imported on use, so
importing the package stays cheap."""
