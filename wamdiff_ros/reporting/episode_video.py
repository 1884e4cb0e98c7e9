"""An animated GIF of one closed-loop episode from a recorded bag: the rig's camera views on top, a
bird's-eye view (BEV) below with lanes, agents, the ego, the planned trajectory and its candidates.

The bag is one recorded from the ``sim_closed_loop`` graph with the bridge's ``publish_markers`` on
(what ``wamdiff demo`` records): images, odometry, the bridge's map and scene markers
(visualization_msgs/MarkerArray), the planner's Path and candidate markers. Messages are paired per
tick by header stamp and drawn with OpenCV (a frame in about a millisecond). Read with rosbags, no rclpy.

BEV: centred on the ego's base_link, x (forward) to the right and y (left) up, as REP-103 reads on a page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wamdiff_ros.atomic import atomic_path
from wamdiff_ros.geometry import box_corners, compose, to_local_points
from wamdiff_ros.geometry import quaternion_yaw as geometry_quaternion_yaw

NS_LANE_CENTER = "lane_centerlines"
NS_LANE_EDGE = "lane_boundaries"
NS_AGENTS = "agents"
NS_EGO = "ego"
"""Marker namespaces of the bridge's map (lanes) and scene (agents, ego) markers."""

MARKER_LINE_STRIP, MARKER_CUBE = 4, 1
"""visualization_msgs/Marker types used here."""

COLORS = {
    "background": (32, 34, 38),
    "grid": (48, 50, 56),
    "edge": (170, 170, 170),
    "center": (85, 88, 95),
    "candidate": (175, 120, 230),
    "best": (120, 230, 120),
    "agent": (245, 150, 45),
    "ego": (70, 140, 255),
    "plan": (240, 50, 50),
    "text": (235, 235, 235),
}
"""RGB colours of the drawing."""
MAX_GIF_BYTES = 10_000_000
LEGEND = (
    ("plan", "plan"),
    ("best candidate", "best"),
    ("candidates", "candidate"),
    ("ego", "ego"),
    ("agents", "agent"),
)


@dataclass(frozen=True)
class VideoTopics:
    """Topics a demo bag holds (defaults: the ``sim_closed_loop`` graph's names)."""

    camera_prefix: str = "/cameras"
    odom: str = "/ego/odom"
    trajectory: str = "/planner/trajectory"
    candidates: str = "/planner_node/candidates"
    scene: str = "/sim_bridge_node/scene_markers"
    map: str = "/sim_bridge_node/map_markers"

    def camera(self, name: str) -> str:
        return f"{self.camera_prefix.rstrip('/')}/{name}/image/compressed"

    def types(self, cameras: list[str]) -> dict[str, str]:
        """Topic -> message type (``pkg/msg/Name``) of everything the video reads; :attr:`map` is latched."""
        markers = "visualization_msgs/msg/MarkerArray"
        return {
            **{self.camera(c): "sensor_msgs/msg/CompressedImage" for c in cameras},
            self.odom: "nav_msgs/msg/Odometry",
            self.trajectory: "nav_msgs/msg/Path",
            self.candidates: markers,
            self.scene: markers,
            self.map: markers,
        }


@dataclass
class BevScene:
    """What the BEV of one tick shows, in the map frame [m, rad].

    Attributes:
        ego_pose: (3,) base_link pose the view is centred on.
        centerlines, edges: lane polylines, each (N, 2).
        boxes: (B, 5) agent boxes ``(x, y, yaw, length, width)``, centre poses.
        ego_box: (5,) the ego's box, or None.
        plan: (T, 3) planned poses, or None.
        candidates: candidate polylines, each (N, 2); ``best`` indexes the best scored one (or -1).
    """

    ego_pose: np.ndarray
    centerlines: list[np.ndarray] = field(default_factory=list)
    edges: list[np.ndarray] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    ego_box: np.ndarray | None = None
    plan: np.ndarray | None = None
    candidates: list[np.ndarray] = field(default_factory=list)
    best: int = -1


@dataclass
class TickView:
    """One frame of the video: ``images`` camera -> RGB (H, W, 3) uint8, the BEV scene, a caption."""

    stamp: float
    images: dict[str, np.ndarray]
    scene: BevScene
    caption: str = ""


# ---- messages (rosbags or rclpy objects alike) -> numpy ---------------------------------------------


def stamp_key(stamp) -> int:
    """A header stamp (builtin_interfaces/Time) -> integer milliseconds, the key that pairs a tick's messages."""
    return round(stamp.sec * 1e3 + stamp.nanosec * 1e-6)


def message_key(msg) -> int | None:
    """:func:`stamp_key` of a message's header; a MarkerArray's is its first marker's (None if empty)."""
    if hasattr(msg, "markers"):
        return stamp_key(msg.markers[0].header.stamp) if msg.markers else None
    return stamp_key(msg.header.stamp)


def quaternion_yaw(q) -> float:
    return geometry_quaternion_yaw(q.x, q.y, q.z, q.w)


def _marker_pose(m) -> np.ndarray:
    return np.array([m.pose.position.x, m.pose.position.y, quaternion_yaw(m.pose.orientation)])


def marker_polylines(msg, ns: str) -> list[np.ndarray]:
    """The LINE_STRIP markers of namespace ``ns`` of a MarkerArray as (N, 2) polylines in the header frame."""
    out = []
    for m in msg.markers:
        if m.ns == ns and m.type == MARKER_LINE_STRIP and len(m.points) >= 2:
            pts = np.array([[p.x, p.y] for p in m.points], np.float64)
            pose = _marker_pose(m)
            if np.any(pose != 0):
                pts = compose(pose, np.column_stack([pts, np.zeros(len(pts))]))[:, :2]
            out.append(pts)
    return out


def marker_boxes(msg, ns: str) -> np.ndarray:
    """The CUBE markers of namespace ``ns`` as (B, 5) ``(x, y, yaw, length, width)``."""
    rows = [[*_marker_pose(m), m.scale.x, m.scale.y] for m in msg.markers if m.ns == ns and m.type == MARKER_CUBE]
    return np.array(rows, np.float64).reshape(-1, 5)


def candidate_polylines(msg) -> tuple[list[np.ndarray], int]:
    """The planner's candidate markers: polylines and the index of the best (drawn widest), -1 if none."""
    lines, widths = [], []
    for m in msg.markers:
        if m.type == MARKER_LINE_STRIP and len(m.points) >= 2:
            lines.append(np.array([[p.x, p.y] for p in m.points], np.float64))
            widths.append(m.scale.x)
    return lines, int(np.argmax(widths)) if widths else -1


def path_poses(msg) -> np.ndarray:
    """A nav_msgs/Path's poses as (T, 3) ``(x, y, yaw)`` in its header frame."""
    return np.array(
        [[p.pose.position.x, p.pose.position.y, quaternion_yaw(p.pose.orientation)] for p in msg.poses], np.float64
    ).reshape(-1, 3)


# ---- bag -> ticks ---------------------------------------------------------------------------------


def load_ticks(
    bag: str | os.PathLike,
    cameras: list[str],
    start: float,
    end: float,
    topics: VideoTopics | None = None,
    caption: str = "",
) -> list[TickView]:
    """The ticks of a bag with header stamps in ``[start, end)`` [s] that have every camera and odometry,
    in time order. The map shown is the newest map message stamped at or before the tick."""
    from wamdiff_ros.data import ros_types as rt
    from wamdiff_ros.data.raw_bag import RawBagReader

    topics = topics or VideoTopics()
    if not cameras:
        raise ValueError("load_ticks: cameras: expected at least one camera name")
    if not end > start:
        raise ValueError(f"load_ticks: expected start < end, got [{start}, {end})")
    store = rt.typestore()
    cam_of = {topics.camera(c): c for c in cameras}
    lo, hi = round(start * 1e3), round(end * 1e3)
    images: dict[int, dict[str, object]] = {}
    odom, plans, cands, scenes = {}, {}, {}, {}
    maps: list[tuple[int, object]] = []
    with RawBagReader(bag) as reader:
        missing = [t for t in [*cam_of, topics.odom] if t not in reader.topics]
        if missing:
            raise ValueError(f"{reader.path}: no topic(s) {missing} (has {sorted(reader.topics)})")
        if topics.map in reader.topics:
            for raw in reader.messages([topics.map]):
                msg = store.deserialize_cdr(raw.data, raw.msgtype)
                key = message_key(msg)
                if key is not None:
                    maps.append((key, msg))
        wanted = [
            t for t in [*cam_of, topics.odom, topics.trajectory, topics.candidates, topics.scene] if t in reader.topics
        ]
        for raw in reader.messages(wanted, start_ns=max(0, int((start - 2.0) * 1e9))):
            if raw.log_ns > (end + 2.0) * 1e9:
                break
            msg = store.deserialize_cdr(raw.data, raw.msgtype)
            key = message_key(msg)
            if key is None or not lo <= key < hi:
                continue
            if raw.topic in cam_of:
                images.setdefault(key, {})[cam_of[raw.topic]] = msg
            elif raw.topic == topics.odom:
                odom[key] = msg
            elif raw.topic == topics.trajectory:
                plans[key] = path_poses(msg)
            elif raw.topic == topics.candidates:
                cands[key] = candidate_polylines(msg)
            else:
                scenes[key] = msg
    maps.sort(key=lambda km: km[0])
    ticks = []
    for key in sorted(odom):
        cams = images.get(key, {})
        if len(cams) != len(cameras):
            continue
        o = odom[key].pose.pose
        ego_pose = np.array([o.position.x, o.position.y, quaternion_yaw(o.orientation)])
        scene = BevScene(ego_pose=ego_pose, plan=plans.get(key))
        lanes = [m for k, m in maps if k <= key]
        if lanes:
            scene.centerlines = marker_polylines(lanes[-1], NS_LANE_CENTER)
            scene.edges = marker_polylines(lanes[-1], NS_LANE_EDGE)
        if key in scenes:
            scene.boxes = marker_boxes(scenes[key], NS_AGENTS)
            ego = marker_boxes(scenes[key], NS_EGO)
            scene.ego_box = ego[0] if len(ego) else None
        if key in cands:
            scene.candidates, scene.best = cands[key]
        speed = float(np.hypot(odom[key].twist.twist.linear.x, odom[key].twist.twist.linear.y))
        text = f"{caption}  t={key / 1e3 - start:5.1f} s  v={speed:4.1f} m/s".strip()
        decoded = {c: rt.decode_image_msg(cams[c]) for c in cameras}
        ticks.append(TickView(key / 1e3, decoded, scene, text))
    return ticks


# ---- drawing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BevView:
    """The BEV's canvas: ``width`` × ``height`` px at ``px_per_m``, the ego ``behind_m`` from the left edge."""

    width: int = 768
    height: int = 320
    px_per_m: float = 6.0
    behind_m: float = 18.0

    def to_px(self, local_xy: np.ndarray) -> np.ndarray:
        """base_link points (..., 2) [m] -> pixel coordinates (..., 2) (u right, v down), as int32."""
        xy = np.asarray(local_xy, np.float64)
        u = (xy[..., 0] + self.behind_m) * self.px_per_m
        v = self.height / 2 - xy[..., 1] * self.px_per_m
        return np.round(np.stack([u, v], -1)).astype(np.int32)


def render_bev(scene: BevScene, view: BevView = BevView(), caption: str = "") -> np.ndarray:
    """The BEV of ``scene`` as an RGB (height, width, 3) uint8 image."""
    import cv2

    img = np.empty((view.height, view.width, 3), np.uint8)
    img[:] = COLORS["background"]
    ego = np.asarray(scene.ego_pose, np.float64)
    aa = cv2.LINE_AA
    for x in np.arange(-view.behind_m // 10 * 10, view.width / view.px_per_m, 10.0):
        u = int(view.to_px(np.array([x, 0.0]))[0])
        cv2.line(img, (u, 0), (u, view.height), COLORS["grid"], 1)

    def lines(polylines, color, thickness):
        pts = [view.to_px(to_local_points(ego, p)) for p in polylines if len(p) >= 2]
        if pts:
            cv2.polylines(img, pts, False, color, thickness, aa)

    def boxes(rows, color):
        if len(rows):
            local = np.column_stack([to_local_points(ego, rows[:, :2]), rows[:, 2] - ego[2]])
            corners = view.to_px(box_corners(local, rows[:, 3], rows[:, 4]))
            cv2.fillPoly(img, list(corners), color, aa)
            cv2.polylines(img, list(corners), True, (255, 255, 255), 1, aa)

    lines(scene.centerlines, COLORS["center"], 1)
    lines(scene.edges, COLORS["edge"], 1)
    others = [c for k, c in enumerate(scene.candidates) if k != scene.best]
    lines(others, COLORS["candidate"], 1)
    if 0 <= scene.best < len(scene.candidates):
        lines([scene.candidates[scene.best]], COLORS["best"], 2)
    boxes(scene.boxes, COLORS["agent"])
    if scene.ego_box is not None:
        boxes(np.asarray(scene.ego_box, np.float64)[None], COLORS["ego"])
    if scene.plan is not None and len(scene.plan):
        plan = np.vstack([ego[:2], np.asarray(scene.plan)[:, :2]])
        pts = view.to_px(to_local_points(ego, plan))
        cv2.polylines(img, [pts], False, COLORS["plan"], 2, aa)
        for p in pts[1:]:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, COLORS["plan"], -1, aa)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for band in (img[:24], img[-24:]):
        band[:] = (0.35 * band + 0.65 * np.array(COLORS["background"])).astype(np.uint8)
    if caption:
        cv2.putText(img, caption, (8, 16), font, 0.45, COLORS["text"], 1, aa)
    x = 8
    for label, key in LEGEND:
        cv2.putText(img, label, (x, view.height - 8), font, 0.4, COLORS[key], 1, aa)
        x += cv2.getTextSize(label, font, 0.4, 1)[0][0] + 14
    scale_u = view.to_px(np.array([[0.0, 0.0], [10.0, 0.0]]))[:, 0]
    right = view.width - 10
    cv2.line(
        img, (right - int(scale_u[1] - scale_u[0]), view.height - 12), (right, view.height - 12), COLORS["text"], 2
    )
    cv2.putText(img, "10 m", (right - 40, view.height - 18), font, 0.4, COLORS["text"], 1, aa)
    return img


def render_tick(tick: TickView, cameras: list[str], view: BevView = BevView()) -> np.ndarray:
    """One video frame: ``cameras`` side by side (scaled to the BEV's width) above the BEV; RGB uint8."""
    import cv2

    cam_w = view.width // len(cameras)
    row = []
    for name in cameras:
        img = np.asarray(tick.images[name])
        h = max(1, round(img.shape[0] * cam_w / img.shape[1]))
        img = np.ascontiguousarray(cv2.resize(img, (cam_w, h), interpolation=cv2.INTER_AREA))
        cv2.putText(img, name, (6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(img)
    height = max(i.shape[0] for i in row)
    top = np.zeros((height, view.width, 3), np.uint8)
    x = 0
    for img in row:
        top[: img.shape[0], x : x + cam_w] = img
        x += cam_w
    return np.vstack([top, render_bev(tick.scene, view, tick.caption)])


def write_gif(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB ``frames`` as a looping animated GIF at ``fps`` (atomically); returns the path."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("write_gif: frames: expected at least one frame")
    if not fps > 0:
        raise ValueError(f"write_gif: fps: expected > 0, got {fps}")
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return Path(path)


def episode_gif(
    bag: str | os.PathLike,
    out: str | os.PathLike,
    cameras: list[str],
    start: float,
    end: float,
    topics: VideoTopics | None = None,
    caption: str = "",
    fps: float = 10.0,
    view: BevView = BevView(),
    max_bytes: int | None = MAX_GIF_BYTES,
) -> tuple[int, float]:
    """The GIF of the ticks stamped in ``[start, end)`` of ``bag``, written to ``out``; returns (frames, fps).

    Over ``max_bytes`` it is written again with every other frame at half the rate (the same real-time
    playback), until it fits. ValueError if no complete tick is in the window."""
    ticks = load_ticks(bag, cameras, start, end, topics, caption)
    if not ticks:
        raise ValueError(f"{bag}: no tick with every camera and odometry stamped in [{start:.2f}, {end:.2f}) s")
    frames = [render_tick(t, cameras, view) for t in ticks]
    while True:
        write_gif(out, frames, fps)
        if max_bytes is None or len(frames) == 1 or Path(out).stat().st_size <= max_bytes:
            return len(frames), fps
        frames, fps = frames[::2], fps / 2
