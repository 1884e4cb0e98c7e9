"""ROS 2 launch file for config/graphs/replay.yaml (nodes, parameters, remappings and arguments live there;
`wamdiff launch replay bag:=PATH` starts the same graph as processes)."""

from wamdiff_ros.graphs import launch_description


def generate_launch_description():
    return launch_description("replay")
