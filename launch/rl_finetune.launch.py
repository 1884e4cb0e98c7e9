"""ROS 2 launch file for config/graphs/rl_finetune.yaml (nodes, parameters and arguments live there;
`wamdiff launch rl_finetune` starts the same graph as processes)."""

from wamdiff_ros.graphs import launch_description


def generate_launch_description():
    return launch_description("rl_finetune")
