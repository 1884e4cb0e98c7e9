"""Any rosbag2 bag as serialized messages: read for playback, write for recording (no rclpy).

Messages stay CDR bytes exactly as rosbag2 stores them and as ``Publisher.publish(bytes)`` and raw
subscriptions hand them over, so playing and recording never deserialise. Written bags use the layout
and atomicity of :mod:`wamdiff_ros.data.bag` (``NAME/NAME.mcap`` + ``metadata.yaml``, built in a hidden
temporary sibling and renamed into place when closed; :meth:`RawBagWriter.abort` leaves nothing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.data.bag import bag_paths, resolve_bag
from wamdiff_ros.data.remap import remap_topics


@dataclass(frozen=True)
class RawMessage:
    """One message of a bag: ``topic``, ``msgtype`` (``pkg/msg/Name``), ``log_ns`` (bag log time [ns]) and
    ``data`` (serialized CDR with its 4-byte encapsulation header)."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes


class RawBagReader:
    """Serialized messages of a rosbag2 directory or ``.mcap`` file, in log-time order.

    ``remaps`` (bag topic -> name, :mod:`wamdiff_ros.data.remap`) renames topics: :attr:`topics`, the
    ``topics`` argument of :meth:`messages` and :attr:`RawMessage.topic` use the new names.

    Attributes:
        path: the bag opened (see :func:`wamdiff_ros.data.bag.resolve_bag`).
        topics: topic -> message type.
        counts: topic -> number of messages.
        start_ns, end_ns: log time of the first and last message [ns].
    """

    def __init__(self, path: str | os.PathLike, remaps: dict[str, str] | None = None):
        from rosbags.highlevel import AnyReader

        self.path = resolve_bag(path)
        self._reader = AnyReader([self.path])
        self._reader.open()
        try:
            self._names = remap_topics({c.topic for c in self._reader.connections}, dict(remaps or {}))
        except ValueError:
            self.close()
            raise
        self.topics = {self._names[c.topic]: c.msgtype for c in self._reader.connections}
        self.counts: dict[str, int] = {}
        for c in self._reader.connections:
            name = self._names[c.topic]
            self.counts[name] = self.counts.get(name, 0) + int(c.msgcount)
        self.start_ns = int(self._reader.start_time)
        self.end_ns = int(self._reader.end_time)
        if not self.topics:
            self.close()
            raise ValueError(f"{self.path}: the bag has no topics")

    def __enter__(self) -> RawBagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def messages(self, topics: list[str] | None = None, start_ns: int | None = None) -> Iterator[RawMessage]:
        """Messages of ``topics`` (None: all) from log time ``start_ns`` on, in log-time order."""
        if topics is not None:
            unknown = sorted(set(topics) - set(self.topics))
            if unknown:
                raise ValueError(f"{self.path}: no topic(s) {unknown} in the bag (has {sorted(self.topics)})")
        conns = [c for c in self._reader.connections if topics is None or self._names[c.topic] in topics]
        if not conns:
            return
        for conn, log_ns, data in self._reader.messages(connections=conns, start=start_ns):
            yield RawMessage(self._names[conn.topic], conn.msgtype, int(log_ns), bytes(data))


class RawBagWriter:
    """Write serialized messages to a rosbag2 MCAP bag, atomically; thread-safe.

    ``path`` is a bag name as for :class:`wamdiff_ros.data.bag.BagWriter` (``out/rec.mcap`` gives the
    directory ``out/rec/``). Types are resolved with :func:`wamdiff_ros.data.ros_types.typestore`, whose
    definitions are stored in the file, so any MCAP reader can decode the bag.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.bag_dir, self.mcap_path = bag_paths(path)
        if self.bag_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.bag_dir} exists; pass overwrite=True (--overwrite) to replace it")
        self.overwrite = overwrite
        self.counts: dict[str, int] = {}
        self._conns: dict[str, object] = {}
        self._lock = threading.Lock()
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.bag_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_root = Path(tempfile.mkdtemp(prefix=f".{self.bag_dir.name}.partial-", dir=self.bag_dir.parent))
        self._writer = Writer(self._tmp_root / self.bag_dir.name, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()

    def __enter__(self) -> RawBagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @staticmethod
    def known_type(msgtype: str) -> bool:
        """Whether ``msgtype`` (``pkg/msg/Name``) can be written (it is in the typestore)."""
        return msgtype in rt.typestore().types

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic before writing to it; ValueError for a type the typestore does not know."""
        if not self.known_type(msgtype):
            raise ValueError(f"topic {topic}: message type {msgtype!r} is not in the ROS 2 typestore; cannot record it")
        with self._lock:
            if self._writer is None:
                raise RuntimeError("RawBagWriter.add_topic: the bag is closed")
            if topic in self._conns:
                if self._conns[topic].msgtype != msgtype:
                    raise ValueError(f"topic {topic}: already recorded as {self._conns[topic].msgtype}, not {msgtype}")
                return
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=rt.typestore())
            self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, data: bytes) -> None:
        """Write one serialized message of a declared topic at log time ``log_ns`` [ns]."""
        with self._lock:
            if self._writer is None:
                raise RuntimeError("RawBagWriter.write: the bag is closed")
            conn = self._conns.get(topic)
            if conn is None:
                raise KeyError(f"RawBagWriter.write: topic {topic} was not added (add_topic first)")
            self._writer.write(conn, int(log_ns), bytes(data))
            self.counts[topic] += 1

    @property
    def closed(self) -> bool:
        return self._writer is None

    def close(self) -> Path:
        """Finish the bag and move it into place; returns the bag directory."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            return self.bag_dir
        try:
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
        return self.bag_dir

    def abort(self) -> None:
        """Drop the partial bag; nothing appears at :attr:`bag_dir`."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        shutil.rmtree(self._tmp_root, ignore_errors=True)
