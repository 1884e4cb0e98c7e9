"""ROS 2 launch file for config/graphs/carla_closed_loop.yaml (nodes, parameters, remappings and arguments live
there; `wamdiff launch carla_closed_loop` starts the same graph as processes)."""

from wamdiff_ros.graphs import launch_description


def generate_launch_description():
    return launch_description("carla_closed_loop")
