"""ament_python build of wamdiff_ros: the Python package, its executables under
``lib/wamdiff_ros`` (so ``ros2 run`` finds them) and launch/config/models under
``share/wamdiff_ros``."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "wamdiff_ros"


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``folder`` recursively under share/<package>/."""
    entries: dict[str, list[str]] = {}
    for path in sorted(glob(os.path.join(folder, "**", "*"), recursive=True)):
        if os.path.isfile(path) and "__pycache__" not in path:
            entries.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(entries.items())


NODES = {
    # executable name -> module:function; nodes register here as they land.
    "planner_node": "wamdiff_ros.ros.planner_node:main",
    "sim_bridge_node": "wamdiff_ros.ros.sim_bridge_node:main",
    "carla_bridge_node": "wamdiff_ros.ros.carla_bridge_node:main",
    "bag_player": "wamdiff_ros.ros.bag_player:node_main",
    "rl_finetune_node": "wamdiff_ros.ros.rl_finetune_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wamdiff_ros developers",
    maintainer_email="wamdiff-ros@example.com",
    description="End-to-end driving planners (WAM-Diff and friends) for ROS 2 vehicle computers.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "wamdiff = wamdiff_ros.cli:main",
            *(f"{name} = {target}" for name, target in NODES.items()),
        ],
    },
)
