"""What ROS 2 this process can use: rclpy, the RMW implementation, the distro, message packages."""

from __future__ import annotations

import os
from importlib import metadata

MESSAGE_PACKAGES = (
    "sensor_msgs",
    "nav_msgs",
    "geometry_msgs",
    "std_msgs",
    "visualization_msgs",
    "diagnostic_msgs",
    "rosgraph_msgs",
    "lifecycle_msgs",
)


def ros_distro() -> str | None:
    """``ROS_DISTRO`` of a sourced ROS, else the distro of the ``ros-<distro>-rclpy`` wheel, else None."""
    if os.environ.get("ROS_DISTRO"):
        return os.environ["ROS_DISTRO"]
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("ros-") and name.endswith("-rclpy"):
            return name.split("-")[1]
    return None


def ros_report() -> dict:
    """rclpy availability, RMW identifier, distro and which message packages import."""
    report: dict = {"distro": ros_distro(), "rclpy": None, "rmw": None, "messages": {}}
    try:
        import rclpy
        from rclpy.utilities import get_rmw_implementation_identifier

        report["rclpy"] = getattr(rclpy, "__version__", None) or _dist_version("rclpy") or "available"
        report["rmw"] = get_rmw_implementation_identifier()
        report["lifecycle"] = _importable("rclpy.lifecycle")
    except Exception as e:
        report["rclpy_error"] = f"{type(e).__name__}: {e}"
    report["messages"] = {pkg: _importable(f"{pkg}.msg") for pkg in MESSAGE_PACKAGES}
    return report


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def _dist_version(name: str) -> str | None:
    for candidate in (name, f"ros-{ros_distro()}-{name}"):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return None
