"""QoS profiles by name, as parameters select them (Isaac ROS style: ``sensor_data``, ``default``, …)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

PROFILES = ("sensor_data", "default", "system_default")


def qos_profile(name: str, depth: int | None = None) -> QoSProfile:
    """The named profile (optionally with another history depth).

    - ``sensor_data``: best effort, volatile, keep last 5 (rclpy's preset; also accepts reliable publishers).
    - ``default``: reliable, volatile, keep last 10 (rclpy's default for a depth of 10).
    - ``system_default``: whatever the RMW's defaults are.
    """
    if name == "sensor_data":
        base = qos_profile_sensor_data
    elif name == "default":
        base = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
    elif name == "system_default":
        base = qos_profile_system_default
    else:
        raise ValueError(f"QoS profile: expected one of {PROFILES}, got {name!r}")
    if depth is None:
        return base
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=base.reliability,
        durability=base.durability,
    )
