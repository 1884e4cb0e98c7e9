"""Ground-truth messages (``wamdiff_msgs``) stored in bags beside the sensor topics, and their
conversions to and from :class:`~wamdiff_ros.types.LogFrame` and :class:`~wamdiff_ros.types.Lane`.

There is no ``wamdiff_msgs`` ROS package: the definitions below are registered in rosbags'
typestore and written into each MCAP file (schema records), so any reader that learns types from a
bag (``rosbags.highlevel.AnyReader``, Foxglove, ``mcap`` tools) decodes them.

- ``/wamdiff/truth`` (``wamdiff_msgs/msg/FrameTruth``): one per tick, the world now (ego, agents,
  route, command, traffic lights). Futures are not stored: they come from later frames.
- ``/wamdiff/map`` (``wamdiff_msgs/msg/RoadMap``): the road graph, once at the start of each episode
  (and again whenever the road changes), stamped like the first tick it applies to.
"""

from __future__ import annotations

import numpy as np

from wamdiff_ros.stamps import time_ns
from wamdiff_ros.types import MARKINGS, Agents, EgoState, Lane, LogFrame

LANE_MSG = """\
# One lane of the road graph, map frame (REP-103), metres.
int64 id
float64[] xs  # centerline, direction of travel
float64[] ys
float64[] widths  # lane width at each centerline point
int64[] successors
bool in_intersection
float64 speed_limit  # m/s
string left_marking  # solid | dashed | none
string right_marking
"""

ROAD_MAP_MSG = """\
# Road graph of an episode; header.frame_id = map.
std_msgs/Header header
string episode
wamdiff_msgs/Lane[] lanes
"""

FRAME_TRUTH_MSG = """\
# Ground truth of one tick; header.frame_id = map; poses of base_link (rear axle) and agent box centres.
std_msgs/Header header
string episode
string scenario
float64 x
float64 y
float64 yaw
float64 vx  # base_link, m/s
float64 vy
float64 ax  # base_link, m/s^2
float64 ay
float64 yaw_rate  # rad/s
int64[] agent_ids
uint8[] agent_types  # 0 vehicle, 1 pedestrian, 2 bicycle, 3 static
float64[] agent_lengths
float64[] agent_widths
float64[] agent_x
float64[] agent_y
float64[] agent_yaw
float64[] agent_vx  # map frame, m/s
float64[] agent_vy
int64[] route_lane_ids
string command
string instruction
int64[] light_lane_ids
uint8[] light_states  # 0 green, 1 yellow, 2 red, 3 unknown
"""

MSG_DEFINITIONS: dict[str, str] = {
    "wamdiff_msgs/msg/Lane": LANE_MSG,
    "wamdiff_msgs/msg/RoadMap": ROAD_MAP_MSG,
    "wamdiff_msgs/msg/FrameTruth": FRAME_TRUTH_MSG,
}

TRUTH_TOPIC = "/wamdiff/truth"
MAP_TOPIC = "/wamdiff/map"


def register(store) -> None:
    """Register the ``wamdiff_msgs`` types in a rosbags typestore (in dependency order)."""
    from rosbags.typesys import get_types_from_msg

    for name, text in MSG_DEFINITIONS.items():
        if name not in store.types:
            store.register(get_types_from_msg(text, name))


def frame_to_msg(frame: LogFrame, stamp_ns: int | None = None):
    """FrameTruth message of a tick; ``stamp_ns`` [ns] overrides ``frame.stamp_ns`` in the header (bag time).

    Only agents valid at the tick are written.
    """
    from wamdiff_ros.data import ros_types as rt

    if frame.agents.num_steps != 1:
        raise ValueError(f"frame_to_msg: LogFrame.agents must have 1 time step, got {frame.agents.num_steps}")
    ok = frame.agents.valid[:, 0]
    a = frame.agents
    pose, vel = a.poses[ok, 0], a.velocities[ok, 0]
    lights = sorted(frame.traffic_lights.items())
    e = frame.ego
    return rt.typestore().types["wamdiff_msgs/msg/FrameTruth"](
        header=rt.header(frame.stamp_ns if stamp_ns is None else stamp_ns, rt.MAP_FRAME),
        episode=str(frame.episode),
        scenario=str(frame.scenario),
        x=float(e.pose[0]),
        y=float(e.pose[1]),
        yaw=float(e.pose[2]),
        vx=float(e.velocity[0]),
        vy=float(e.velocity[1]),
        ax=float(e.acceleration[0]),
        ay=float(e.acceleration[1]),
        yaw_rate=float(e.yaw_rate),
        agent_ids=a.ids[ok].astype(np.int64),
        agent_types=a.types[ok].astype(np.uint8),
        agent_lengths=a.sizes[ok, 0].copy(),
        agent_widths=a.sizes[ok, 1].copy(),
        agent_x=pose[:, 0].copy(),
        agent_y=pose[:, 1].copy(),
        agent_yaw=pose[:, 2].copy(),
        agent_vx=vel[:, 0].copy(),
        agent_vy=vel[:, 1].copy(),
        route_lane_ids=np.asarray(frame.route_lane_ids, dtype=np.int64),
        command=str(frame.command),
        instruction=str(frame.instruction),
        light_lane_ids=np.array([k for k, _ in lights], dtype=np.int64),
        light_states=np.array([v for _, v in lights], dtype=np.uint8),
    )


def msg_to_frame(msg) -> LogFrame:
    """LogFrame from a FrameTruth message (any class with its fields, e.g. from AnyReader)."""
    stamp_ns = time_ns(msg.header.stamp)
    n = len(msg.agent_ids)
    agents = Agents(
        ids=np.asarray(msg.agent_ids, np.int64),
        types=np.asarray(msg.agent_types, np.int64),
        sizes=np.stack([np.asarray(msg.agent_lengths), np.asarray(msg.agent_widths)], axis=1).reshape(n, 2),
        poses=np.stack([msg.agent_x, msg.agent_y, msg.agent_yaw], axis=1).reshape(n, 1, 3),
        velocities=np.stack([msg.agent_vx, msg.agent_vy], axis=1).reshape(n, 1, 2),
        valid=np.ones((n, 1), bool),
    )
    return LogFrame(
        stamp_ns=stamp_ns,
        episode=msg.episode,
        ego=EgoState(
            pose=np.array([msg.x, msg.y, msg.yaw]),
            velocity=np.array([msg.vx, msg.vy]),
            acceleration=np.array([msg.ax, msg.ay]),
            yaw_rate=msg.yaw_rate,
            stamp_ns=stamp_ns,
        ),
        agents=agents,
        route_lane_ids=[int(i) for i in msg.route_lane_ids],
        command=msg.command,
        instruction=msg.instruction,
        scenario=msg.scenario,
        traffic_lights={int(k): int(v) for k, v in zip(msg.light_lane_ids, msg.light_states)},
    )


def lanes_to_msg(lanes: list[Lane], episode: str, stamp_ns: int):
    """RoadMap message of an episode's lanes."""
    from wamdiff_ros.data import ros_types as rt

    t = rt.typestore().types
    return t["wamdiff_msgs/msg/RoadMap"](
        header=rt.header(stamp_ns, rt.MAP_FRAME),
        episode=str(episode),
        lanes=[
            t["wamdiff_msgs/msg/Lane"](
                id=int(lane.lane_id),
                xs=lane.centerline[:, 0].copy(),
                ys=lane.centerline[:, 1].copy(),
                widths=lane.width.copy(),
                successors=np.asarray(lane.successors, dtype=np.int64),
                in_intersection=bool(lane.in_intersection),
                speed_limit=float(lane.speed_limit),
                left_marking=lane.markings[0],
                right_marking=lane.markings[1],
            )
            for lane in lanes
        ],
    )


def msg_to_lanes(msg) -> list[Lane]:
    """Lanes from a RoadMap message; raises ValueError on an unknown marking."""
    lanes = []
    for m in msg.lanes:
        for mark in (m.left_marking, m.right_marking):
            if mark not in MARKINGS:
                raise ValueError(f"RoadMap lane {m.id}: marking must be one of {MARKINGS}, got {mark!r}")
        lanes.append(
            Lane(
                lane_id=int(m.id),
                centerline=np.stack([m.xs, m.ys], axis=1),
                width=np.asarray(m.widths, np.float64),
                successors=tuple(int(s) for s in m.successors),
                in_intersection=bool(m.in_intersection),
                speed_limit=float(m.speed_limit),
                markings=(m.left_marking, m.right_marking),
            )
        )
    return lanes
