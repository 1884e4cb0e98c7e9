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


def _event_types():
    try:
        from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks
    return PublisherEventCallbacks, SubscriptionEventCallbacks


def subscription_events():
    """Event callbacks for a subscription: none.

    rclpy otherwise adds default handlers (incompatible QoS and type) to every publisher and
    subscription, and its executor re-walks each one on every wake-up: on a node with a dozen inputs
    that was a quarter of the executor's time, taken from the planning thread under the GIL. Incompatible
    publishers are found from the ROS graph instead (:func:`incompatible_publishers`).
    """
    _, callbacks = _event_types()
    return callbacks(use_default_callbacks=False)


def publisher_events():
    """Event callbacks for a publisher: none (see :func:`subscription_events` for why)."""
    callbacks, _ = _event_types()
    return callbacks(use_default_callbacks=False)


def incompatible_publishers(node, topic: str, qos: QoSProfile) -> list[str]:
    """``"<publisher node>: <reason>"`` for each publisher of ``topic`` (a resolved name) whose offered QoS
    a subscription with ``qos`` cannot match (rmw's compatibility check, as ``ros2 doctor`` uses)."""
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    out = []
    for info in node.get_publishers_info_by_topic(topic):
        compatibility, reason = qos_check_compatible(info.qos_profile, qos)
        if compatibility == QoSCompatibility.ERROR:
            name = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
            out.append(f"{name}: {reason.strip()}")
    return out
