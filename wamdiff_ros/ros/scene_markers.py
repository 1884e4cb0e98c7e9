"""The embedded world's ground truth as visualization_msgs/MarkerArray (RViz, Foxglove, the demo's GIF).

There is no ``wamdiff_msgs`` ROS package to publish ``/wamdiff/truth`` live, so the bridge shows what a
viewer needs with standard markers, in the map frame:

- map (once per episode, latched): a DELETEALL, then per lane a centerline LINE_STRIP (namespace
  :data:`~wamdiff_ros.reporting.episode_video.NS_LANE_CENTER`) and its two boundaries
  (``NS_LANE_EDGE``), resampled every :data:`MAP_SPACING_M` m;
- scene (every tick): a DELETEALL, then one CUBE per agent (``NS_AGENTS``, id = track id, colour by
  type) and the ego's box (``NS_EGO``).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from wamdiff_ros.geometry import arc_length, compose, interpolate_polyline
from wamdiff_ros.reporting.episode_video import NS_AGENTS, NS_EGO, NS_LANE_CENTER, NS_LANE_EDGE
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.types import AgentType, Lane, LogFrame

MAP_SPACING_M = 2.0
"""Point spacing of published lane polylines [m] (highway lanes hold thousands of points)."""

BOX_HEIGHT_M = 1.6
AGENT_RGBA = {
    AgentType.VEHICLE: (0.96, 0.59, 0.18, 0.9),
    AgentType.PEDESTRIAN: (0.95, 0.3, 0.6, 0.9),
    AgentType.BICYCLE: (0.6, 0.85, 0.3, 0.9),
    AgentType.STATIC: (0.6, 0.6, 0.6, 0.9),
}
EGO_RGBA = (0.27, 0.55, 1.0, 0.95)


def resample_polyline(points: np.ndarray, spacing: float = MAP_SPACING_M) -> np.ndarray:
    """``points`` (N, 2) every ``spacing`` m along their length, both ends kept."""
    points = np.asarray(points, np.float64)
    length = float(arc_length(points)[-1])
    n = max(2, int(np.ceil(length / spacing)) + 1)
    return interpolate_polyline(points, np.linspace(0.0, length, n))[:, :2]


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=conv.to_time(stamp_ns), frame_id=frame_id)


def _line(header: Header, ns: str, mid: int, points: np.ndarray, width: float, rgba) -> Marker:
    m = Marker(header=header, ns=ns, id=mid, type=Marker.LINE_STRIP, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in points]
    m.scale.x = width
    m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    return m


def _box(header: Header, ns: str, mid: int, pose: np.ndarray, length: float, width: float, rgba) -> Marker:
    m = Marker(header=header, ns=ns, id=mid, type=Marker.CUBE, action=Marker.ADD)
    m.pose.position.x, m.pose.position.y, m.pose.position.z = float(pose[0]), float(pose[1]), BOX_HEIGHT_M / 2
    m.pose.orientation = conv.yaw_quaternion(float(pose[2]))
    m.scale.x, m.scale.y, m.scale.z = float(length), float(width), BOX_HEIGHT_M
    m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    return m


def lane_markers(lanes: list[Lane], stamp_ns: int, frame_id: str = "map") -> MarkerArray:
    """The road network: DELETEALL, then centerline and boundary LINE_STRIPs per lane."""
    header = _header(stamp_ns, frame_id)
    out = MarkerArray()
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    for i, lane in enumerate(lanes):
        out.markers.append(_line(header, NS_LANE_CENTER, i, resample_polyline(lane.centerline), 0.1, (1, 1, 1, 0.3)))
        for j, edge in enumerate(lane.boundaries):
            out.markers.append(_line(header, NS_LANE_EDGE, 2 * i + j, resample_polyline(edge), 0.15, (1, 1, 1, 0.8)))
    return out


def scene_markers(
    frame: LogFrame, stamp_ns: int, ego_size: tuple[float, float], rear_axle_to_center: float, frame_id: str = "map"
) -> MarkerArray:
    """One tick's traffic: DELETEALL, a CUBE per agent at its box centre, and the ego's box
    (``ego_size`` = (length, width) [m], centre ``rear_axle_to_center`` m ahead of base_link)."""
    header = _header(stamp_ns, frame_id)
    out = MarkerArray()
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    agents = frame.agents
    for a in range(len(agents.ids)):
        if not agents.valid[a, 0]:
            continue
        rgba = AGENT_RGBA.get(AgentType(int(agents.types[a])), AGENT_RGBA[AgentType.STATIC])
        mid = int(agents.ids[a]) % 2**31
        out.markers.append(_box(header, NS_AGENTS, mid, agents.poses[a, 0], *agents.sizes[a], rgba))
    center = compose(frame.ego.pose, np.array([rear_axle_to_center, 0.0, 0.0]))
    out.markers.append(_box(header, NS_EGO, 0, center, ego_size[0], ego_size[1], EGO_RGBA))
    return out
