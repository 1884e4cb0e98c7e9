"""Driving logs as rosbag2 MCAP bags, written atomically and read back with rosbags.

A bag is a rosbag2 directory ``NAME/`` holding ``NAME/NAME.mcap`` and ``NAME/metadata.yaml``.
``bag_paths("out/train.mcap")`` and ``bag_paths("out/train")`` both name the directory ``out/train``,
so ``--out out/train.mcap`` gives ``out/train/train.mcap``; ``ros2 bag play out/train``,
``ros2 bag play out/train/train.mcap`` and ``AnyReader([Path("out/train")])`` all open it. The bag is
written into a hidden temporary sibling directory and renamed into place when complete, so a reader
never sees a partial bag and an interrupted recording leaves nothing behind.

Topics per tick (all stamped with the tick's bag time; ``/clock`` carries it as sim time):

===================================== ================================ =====================================
topic                                 type                             notes
===================================== ================================ =====================================
``/clock``                            rosgraph_msgs/msg/Clock
``/wamdiff/map``                      wamdiff_msgs/msg/RoadMap         first tick of an episode, road changes
``/wamdiff/truth``                    wamdiff_msgs/msg/FrameTruth      ground truth for scoring
``/ego/odom``                         nav_msgs/msg/Odometry            map -> base_link, twist in base_link
``/ego/command``                      std_msgs/msg/String
``/ego/instruction``                  std_msgs/msg/String
``/cameras/<name>/camera_info``       sensor_msgs/msg/CameraInfo       frame ``<name>_optical``
``/cameras/<name>/image/compressed``  sensor_msgs/msg/CompressedImage  JPEG (default) or PNG
``/cameras/<name>/image``             sensor_msgs/msg/Image            rgb8, instead of compressed (raw)
===================================== ================================ =====================================

``/clock`` is in the bag, so replay with ``ros2 bag play BAG`` and ``use_sim_time:=true`` on the
consumers; adding ``--clock`` would give /clock a second publisher.

Bag time: an episode's world time is shifted so its first tick lands :data:`EPISODE_GAP` s after the
previous episode's last tick (the first episode starts at :data:`START_TIME`), so stamps increase
monotonically through a bag holding many episodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.data.images import check_rgb, encode_compressed
from wamdiff_ros.data.remap import remap_topics
from wamdiff_ros.data.truth_msgs import MAP_TOPIC, TRUTH_TOPIC, frame_to_msg, lanes_to_msg, msg_to_frame, msg_to_lanes
from wamdiff_ros.rig import CAMERA_PREFIX, CameraSpec, Rig, default_camera_info_topic, default_image_topic
from wamdiff_ros.stamps import seconds_to_ns, time_ns
from wamdiff_ros.types import Lane, LogFrame

START_TIME = 1.0
"""Bag time of the first tick [s] (0 is avoided: many ROS tools read a zero stamp as "unset")."""

EPISODE_GAP = 1.0
"""Bag time between the last tick of an episode and the first of the next [s]."""

START_TIME_NS, EPISODE_GAP_NS = seconds_to_ns(START_TIME), seconds_to_ns(EPISODE_GAP)

IMAGE_FORMATS = ("jpeg", "png", "raw")

CLOCK_TOPIC = "/clock"
ODOM_TOPIC = "/ego/odom"
COMMAND_TOPIC = "/ego/command"
INSTRUCTION_TOPIC = "/ego/instruction"


image_topic = default_image_topic
camera_info_topic = default_camera_info_topic


def bag_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(bag directory, mcap file)`` for an output name given with or without ``.mcap``."""
    p = Path(path)
    bag_dir = p.with_suffix("") if p.suffix == ".mcap" else p
    if not bag_dir.name or bag_dir.name in (".", ".."):
        raise ValueError(f"bag path {str(path)!r}: expected a name such as out/train.mcap")
    return bag_dir, bag_dir / f"{bag_dir.name}.mcap"


def resolve_bag(path: str | os.PathLike) -> Path:
    """An existing bag to open: a bag directory, an ``.mcap`` file, or the name given to :class:`BagWriter`."""
    p = Path(path)
    if p.is_dir() or (p.is_file() and p.suffix == ".mcap"):
        return p
    bag_dir, _ = bag_paths(p)
    if bag_dir.is_dir():
        return bag_dir
    raise FileNotFoundError(f"{path}: no rosbag2 directory or .mcap file there (also tried {bag_dir})")


@dataclass(frozen=True)
class ImageEncoder:
    """Checks a tick's camera images against ``rig`` and encodes them as a bag stores them.

    Calling it gives camera -> JPEG/PNG bytes, or for ``"raw"`` the checked H×W×3 uint8 RGB array.
    It holds no open files, so a worker process can encode a tick's images and hand the result to
    :meth:`BagWriter.write_encoded` in the process that writes the bag.
    """

    rig: Rig
    image_format: str = "jpeg"
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"BagWriter.image_format: expected one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"BagWriter.jpeg_quality: expected 1..100, got {self.jpeg_quality}")

    def __call__(self, images: dict[str, np.ndarray]) -> dict[str, bytes | np.ndarray]:
        if set(images) != set(self.rig.names):
            raise ValueError(
                f"BagWriter.write_tick: expected images for cameras {self.rig.names}, got {sorted(images)}"
            )
        out: dict[str, bytes | np.ndarray] = {}
        for cam in self.rig.cameras:
            img = check_rgb(images[cam.name], f"images[{cam.name!r}]")
            if img.shape[:2] != (cam.height, cam.width):
                raise ValueError(
                    f"images[{cam.name!r}]: expected {cam.width}×{cam.height} (rig), got {img.shape[1]}×{img.shape[0]}"
                )
            if self.image_format == "raw":
                out[cam.name] = img
            else:
                out[cam.name] = encode_compressed(img, self.image_format, self.jpeg_quality)
        return out


class BagWriter:
    """Record ticks (LogFrame + camera images) to a rosbag2 MCAP bag, atomically.

    Use as a context manager; the bag appears at :attr:`bag_dir` only when the block exits without
    an error. ``image_format`` is ``"jpeg"`` / ``"png"`` (CompressedImage) or ``"raw"`` (Image, rgb8).
    :attr:`metadata` (str -> JSON-able; may be updated until the bag closes) lands in metadata.yaml's
    custom_data as ``wamdiff.<key>`` (JSON), beside the rig.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        rig: Rig,
        *,
        image_format: str = "jpeg",
        jpeg_quality: int = 90,
        overwrite: bool = False,
        metadata: dict | None = None,
    ):
        self.encoder = ImageEncoder(rig, image_format, int(jpeg_quality))
        self.bag_dir, self.mcap_path = bag_paths(path)
        if self.bag_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.bag_dir} exists; pass overwrite=True (--overwrite) to replace it")
        self.rig = rig
        self.image_format = image_format
        self.jpeg_quality = int(jpeg_quality)
        self.overwrite = overwrite
        self.metadata = dict(metadata or {})
        self.frames = 0
        self.episodes = 0
        self._writer = None
        self._tmp_root: Path | None = None
        self._conns: dict[str, object] = {}
        self._episode: str | None = None
        self._offset_ns = 0
        self._last_ns: int | None = None

    def __enter__(self) -> BagWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.bag_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_root = Path(tempfile.mkdtemp(prefix=f".{self.bag_dir.name}.partial-", dir=self.bag_dir.parent))
        self._writer = Writer(self._tmp_root / self.bag_dir.name, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        store = rt.typestore()
        topics = {
            CLOCK_TOPIC: "rosgraph_msgs/msg/Clock",
            MAP_TOPIC: "wamdiff_msgs/msg/RoadMap",
            TRUTH_TOPIC: "wamdiff_msgs/msg/FrameTruth",
            ODOM_TOPIC: "nav_msgs/msg/Odometry",
            COMMAND_TOPIC: "std_msgs/msg/String",
            INSTRUCTION_TOPIC: "std_msgs/msg/String",
        }
        raw = self.image_format == "raw"
        for cam in self.rig.cameras:
            topics[camera_info_topic(cam.name)] = "sensor_msgs/msg/CameraInfo"
            image_type = "sensor_msgs/msg/Image" if raw else "sensor_msgs/msg/CompressedImage"
            topics[image_topic(cam.name, not raw)] = image_type
        for topic, msgtype in topics.items():
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=store)

    @property
    def episode(self) -> str | None:
        """Episode of the last tick written (None before the first)."""
        return self._episode

    def write_tick(self, frame: LogFrame, images: dict[str, np.ndarray], lanes: list[Lane] | None = None) -> int:
        """Write one tick; returns its bag time [ns].

        ``lanes`` is required on the first tick of each episode and may be given again whenever the
        road changes. ``images`` must hold exactly the rig's cameras at the rig's sizes (H×W×3 uint8 RGB).
        """
        return self.write_encoded(frame, self.encoder(images), lanes)

    def write_encoded(
        self, frame: LogFrame, encoded: dict[str, bytes | np.ndarray], lanes: list[Lane] | None = None
    ) -> float:
        """:meth:`write_tick` with images already passed through an :class:`ImageEncoder` of the same
        rig and format (:attr:`encoder`)."""
        if self._writer is None:
            raise RuntimeError("BagWriter.write_tick: the bag is not open (use it as a context manager)")
        new_episode = frame.episode != self._episode
        if new_episode and lanes is None:
            raise ValueError(f"BagWriter.write_tick: episode {frame.episode!r} starts here; pass its lanes")
        if set(encoded) != set(self.rig.names):
            raise ValueError(
                f"BagWriter.write_encoded: expected images for cameras {self.rig.names}, got {sorted(encoded)}"
            )
        if new_episode:
            start = START_TIME_NS if self._last_ns is None else self._last_ns + EPISODE_GAP_NS
            self._offset_ns = start - frame.stamp_ns
        t = ns = frame.stamp_ns + self._offset_ns
        if self._last_ns is not None and t <= self._last_ns:
            raise ValueError(
                f"BagWriter.write_tick: episode {frame.episode!r} stamp {frame.stamp:.3f} s does not increase"
            )
        self._write(CLOCK_TOPIC, rt.clock(t), ns)
        if lanes is not None:
            self._write(MAP_TOPIC, lanes_to_msg(lanes, frame.episode, t), ns)
        self._write(TRUTH_TOPIC, frame_to_msg(frame, stamp_ns=t), ns)
        ego = frame.ego
        self._write(ODOM_TOPIC, rt.odometry(ego, t), ns)
        self._write(COMMAND_TOPIC, rt.string(frame.command), ns)
        self._write(INSTRUCTION_TOPIC, rt.string(frame.instruction), ns)
        for cam in self.rig.cameras:
            self._write(camera_info_topic(cam.name), rt.camera_info(cam, t), ns)
            if self.image_format == "raw":
                self._write(image_topic(cam.name, False), rt.raw_image(encoded[cam.name], t, cam.name), ns)
            else:
                msg = rt.compressed_image_msg(encoded[cam.name], t, cam.name, self.image_format)
                self._write(image_topic(cam.name), msg, ns)
        self._last_ns = t
        self._episode = frame.episode
        self.episodes += int(new_episode)
        self.frames += 1
        return t

    def _write(self, topic: str, msg, ns: int) -> None:
        conn = self._conns[topic]
        self._writer.write(conn, ns, rt.typestore().serialize_cdr(msg, conn.msgtype))

    def close(self) -> None:
        """Finish the bag and move it into place (replacing an old one only if ``overwrite``)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.set_custom_data("wamdiff.rig", json.dumps(self.rig.to_dict()))
            for key, value in self.metadata.items():
                writer.set_custom_data(f"wamdiff.{key}", json.dumps(value))
            writer.close()
            built = self._tmp_root / self.bag_dir.name
            for f in built.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if self.bag_dir.exists():
                if not self.overwrite:
                    raise FileExistsError(f"{self.bag_dir} appeared while recording; not replacing it")
                os.replace(self.bag_dir, self._tmp_root / "replaced")
            os.replace(built, self.bag_dir)
        finally:
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    def abort(self) -> None:
        """Drop the partial bag; nothing appears at :attr:`bag_dir`."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)


@dataclass
class DrivingLog:
    """The ground truth of a bag: frames in time order and the road of each episode.

    Attributes:
        frames: one LogFrame per tick, stamps in bag time.
        roads: episode -> list of ``(bag time [ns], lanes)``, in time order (a new entry when the road changes).
    """

    frames: list[LogFrame]
    roads: dict[str, list[tuple[int, list[Lane]]]] = field(default_factory=dict)

    def lanes_at(self, k: int) -> list[Lane]:
        """The road in force at frame ``k``."""
        f = self.frames[k]
        entries = self.roads.get(f.episode)
        if not entries:
            raise ValueError(f"DrivingLog: episode {f.episode!r} has no /wamdiff/map message")
        current = [lanes for t, lanes in entries if t <= f.stamp_ns]
        if not current:
            raise ValueError(f"DrivingLog: episode {f.episode!r} has no road before t={f.stamp:.3f} s")
        return current[-1]


class BagReader:
    """Read a driving bag, MCAP or sqlite3, with ``rosbags.highlevel.AnyReader`` (types learnt from the bag
    itself); ``remaps`` (bag topic -> name, see :mod:`wamdiff_ros.data.remap`) renames its topics."""

    def __init__(self, path: str | os.PathLike, remaps: dict[str, str] | None = None):
        self.path = resolve_bag(path)
        from rosbags.highlevel import AnyReader

        self._reader = AnyReader([self.path])
        self._reader.open()
        try:
            self._names = remap_topics({c.topic for c in self._reader.connections}, dict(remaps or {}))
        except ValueError:
            self.close()
            raise
        self.topics = {self._names[c.topic]: c.msgtype for c in self._reader.connections}
        custom = _custom_data(self.path)
        self.metadata = {k.removeprefix("wamdiff."): _loads(v) for k, v in custom.items() if k.startswith("wamdiff.")}
        self._camera_topics: dict[str, str] = {}
        if TRUTH_TOPIC not in self.topics:
            self.close()
            raise ValueError(f"{self.path}: no {TRUTH_TOPIC} topic (has {sorted(self.topics)}); not a wamdiff log")

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def storage_files(self) -> list[Path]:
        """The storage files of the bag, MCAP or sqlite3 (what a content hash covers)."""
        if self.path.is_file():
            return [self.path]
        return sorted([*self.path.glob("*.mcap"), *self.path.glob("*.db3")])

    @property
    def cameras(self) -> list[str]:
        """Camera names with an image topic on the default scheme (``/cameras/<name>/image…``), in the
        recorded rig's order when the bag has one."""
        prefix = CAMERA_PREFIX + "/"
        found = {t.split("/")[2] for t in self.topics if t.startswith(prefix) and "/image" in t}
        order = [c["name"] for c in self.metadata.get("rig", {}).get("cameras", [])]
        return [c for c in order if c in found] + sorted(found - set(order))

    def image_topic(self, camera: str | CameraSpec) -> str:
        """The image topic of a camera (compressed preferred), as :meth:`rig` found it or on the camera's
        topics; ValueError naming the topics looked for and the topics the bag has."""
        if isinstance(camera, CameraSpec):
            name, looked = camera.name, [camera.images_on(True), camera.images_on(False)]
        elif camera in self._camera_topics:
            return self._camera_topics[camera]
        else:
            name, looked = camera, [default_image_topic(camera, True), default_image_topic(camera, False)]
        found = next((t for t in looked if t in self.topics), None)
        if found is None:
            raise ValueError(self._missing(f"camera {name!r}: no image topic", looked))
        self._camera_topics[name] = found
        return found

    def rig(self, expected: Rig | None = None) -> Rig:
        """The recorded rig: ``expected``'s cameras (by their topics) or, without it, those on the default
        scheme; sizes and fields of view from the bag's metadata.yaml rig when it has the camera, else
        from its first camera_info (mounting poses unknown: zero). ValueError naming the topics looked
        for and the topics the bag has when a camera or its camera_info is missing."""
        recorded = {}
        if "rig" in self.metadata:
            meta = Rig.from_dict(self.metadata["rig"], f"{self.path} metadata")
            if expected is None:
                for c in meta.cameras:
                    self.image_topic(c)
                return meta
            recorded = {c.name: c for c in meta.cameras}
        wanted = [(c.name, c) for c in expected.cameras] if expected is not None else [(n, n) for n in self.cameras]
        if not wanted:
            looked = [default_image_topic("<camera>", False), default_image_topic("<camera>", True)]
            raise ValueError(self._missing("no camera image topics", looked))
        cams = []
        for name, camera in wanted:
            self.image_topic(camera)
            if name in recorded:
                cams.append(recorded[name])
                continue
            info_topic = camera.camera_info_on() if isinstance(camera, CameraSpec) else default_camera_info_topic(name)
            msg = next(self._messages([info_topic]), None)
            if msg is None:
                raise ValueError(self._missing(f"camera {name!r}: no camera_info", [info_topic]))
            _, info = msg
            fov = np.degrees(2 * np.arctan(0.5 * info.width / info.k[0]))
            cams.append(CameraSpec(name, int(info.width), int(info.height), float(fov), (0.0, 0.0, 0.0)))
        return Rig("from_camera_info", tuple(cams))

    def _missing(self, what: str, looked: list[str]) -> str:
        return (
            f"{self.path}: {what}: looked for {', '.join(looked)}; the bag has {', '.join(sorted(self.topics))} "
            "(rename topics with --remap FROM:=TO, or name the camera's image_topic / camera_info_topic in the rig)"
        )

    def read_log(self) -> DrivingLog:
        """All FrameTruth and RoadMap messages as a :class:`DrivingLog`."""
        frames, roads = [], {}
        for topic, msg in self._messages([TRUTH_TOPIC, MAP_TOPIC]):
            if topic == TRUTH_TOPIC:
                frames.append(msg_to_frame(msg))
            else:
                roads.setdefault(msg.episode, []).append((time_ns(msg.header.stamp), msg_to_lanes(msg)))
        return DrivingLog(frames, roads)

    def image_messages(self, cameras: list[str] | None = None) -> Iterator[tuple[str, int, object]]:
        """``(camera, header stamp [ns], deserialised image message)`` in log order (undecoded)."""
        cameras = self.cameras if cameras is None else cameras
        by_topic = {self.image_topic(c): c for c in cameras}
        for topic, msg in self._messages(list(by_topic)):
            yield by_topic[topic], time_ns(msg.header.stamp), msg

    def _messages(self, topics: list[str]) -> Iterator[tuple[str, object]]:
        """``(topic as read, deserialised message)`` of these topics (names after remapping)."""
        conns = [c for c in self._reader.connections if self._names[c.topic] in topics]
        for conn, _, raw in self._reader.messages(connections=conns):
            yield self._names[conn.topic], self._reader.deserialize(raw, conn.msgtype)


def _custom_data(path: Path) -> dict[str, str]:
    """metadata.yaml's custom_data of a bag directory ({} for a bare .mcap file)."""
    meta = path / "metadata.yaml"
    if not meta.is_file():
        return {}
    import yaml

    with open(meta) as f:
        info = (yaml.safe_load(f) or {}).get("rosbag2_bagfile_information", {})
    return dict(info.get("custom_data") or {})


def _loads(value: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
