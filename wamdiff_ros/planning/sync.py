"""Approximate-time synchronisation of several stamped streams (message_filters' ApproximateTime idea).

Stamps are integer nanoseconds (a set answers with its key stamp exactly). A *set* holds one message
per stream whose stamps all lie within ``slop`` seconds of each other. The
newest complete set wins: sets are searched from the newest key-stream stamp backwards. A stamp that
goes backwards on any stream (a bag looping, a simulator resetting) clears every buffer, so a set never
mixes messages from before and after the jump.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from wamdiff_ros.stamps import as_ns, ns_to_seconds, seconds_to_ns


@dataclass(frozen=True)
class Stamped:
    """A message with its header stamp [ns]."""

    stamp_ns: int
    payload: Any


@dataclass(frozen=True)
class SyncSet:
    """One message per stream, stamps within the slop.

    Attributes:
        items: stream name -> message.
        key_ns: newest stamp among the key streams [ns] (what makes a set "new").
    """

    items: dict[str, Stamped]
    key_ns: int

    @property
    def oldest_ns(self) -> int:
        return min(m.stamp_ns for m in self.items.values())

    @property
    def newest_ns(self) -> int:
        return max(m.stamp_ns for m in self.items.values())

    @property
    def spread(self) -> float:
        """Newest minus oldest stamp [s]."""
        return ns_to_seconds(self.newest_ns - self.oldest_ns)


class ApproxTimeSync:
    """Buffers the latest ``queue_size`` messages of each stream and finds the newest complete set.

    Args:
        streams: names of the streams a set must contain.
        slop: largest stamp difference allowed inside a set [s].
        key_streams: streams whose stamps define a set's time and newness (default: all).
        queue_size: messages kept per stream.

    Thread-safe: ``push`` may be called from subscription callbacks while another thread calls
    :meth:`take_newest`.
    """

    def __init__(self, streams, slop: float, key_streams=None, queue_size: int = 10):
        self.streams = tuple(streams)
        if not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"ApproxTimeSync.streams: expected unique names, got {self.streams}")
        self.key_streams = tuple(key_streams) if key_streams is not None else self.streams
        unknown = set(self.key_streams) - set(self.streams)
        if not self.key_streams or unknown:
            raise ValueError(f"ApproxTimeSync.key_streams: expected a non-empty subset of streams, got {unknown}")
        if queue_size < 1:
            raise ValueError(f"ApproxTimeSync.queue_size: expected >= 1, got {queue_size}")
        self.slop = slop
        self._buffers: dict[str, deque[Stamped]] = {s: deque(maxlen=queue_size) for s in self.streams}
        self._last: dict[str, Stamped] = {}
        self._consumed_key: int | None = None
        self._lock = threading.Lock()
        self.resets = 0

    @property
    def slop(self) -> float:
        return self._slop

    @slop.setter
    def slop(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"ApproxTimeSync.slop: expected >= 0 s, got {value}")
        self._slop = float(value)
        self._slop_ns = seconds_to_ns(value)

    def push(self, stream: str, stamp_ns: int, payload: Any) -> bool:
        """Add a message stamped ``stamp_ns`` [ns]; returns True if its stamp went backwards and the buffers
        were reset."""
        if stream not in self._buffers:
            raise KeyError(f"ApproxTimeSync: unknown stream {stream!r} (streams: {self.streams})")
        msg = Stamped(as_ns(stamp_ns), payload)
        with self._lock:
            buf = self._buffers[stream]
            reset = bool(buf) and msg.stamp_ns < buf[-1].stamp_ns
            if reset:
                for b in self._buffers.values():
                    b.clear()
                self._consumed_key = None
                self.resets += 1
            elif buf and msg.stamp_ns == buf[-1].stamp_ns:
                buf.pop()
            buf.append(msg)
            self._last[stream] = msg
        return reset

    def last(self, stream: str) -> Stamped | None:
        """Newest message seen on ``stream`` (kept across resets), or None."""
        with self._lock:
            return self._last.get(stream)

    def newest(self, only_new: bool = False) -> SyncSet | None:
        """The newest complete set (only one newer than the last taken one if ``only_new``), or None."""
        with self._lock:
            return self._search(only_new)

    def take_newest(self) -> SyncSet | None:
        """The newest complete set newer than the last one taken, marking it taken; None if there is none."""
        with self._lock:
            found = self._search(only_new=True)
            if found is not None:
                self._consumed_key = found.key_ns
            return found

    def clear(self) -> None:
        with self._lock:
            for b in self._buffers.values():
                b.clear()
            self._last.clear()
            self._consumed_key = None

    def _search(self, only_new: bool) -> SyncSet | None:
        """Newest complete set, pivoting on key-stream stamps from the newest down. With ``only_new`` only
        stamps after the last taken key are pivots; a set's key is at least its pivot, so it is new."""
        if any(not b for b in self._buffers.values()):
            return None
        floor = self._consumed_key if only_new else None
        pivots = set()
        for s in self.key_streams:
            for m in reversed(self._buffers[s]):
                if floor is not None and m.stamp_ns <= floor:
                    break
                pivots.add(m.stamp_ns)
        for pivot in sorted(pivots, reverse=True):
            items = {s: _closest(buf, pivot) for s, buf in self._buffers.items()}
            stamps = [m.stamp_ns for m in items.values()]
            key = max(items[s].stamp_ns for s in self.key_streams)
            if max(stamps) - min(stamps) <= self._slop_ns:
                return SyncSet(items=items, key_ns=key)
        return None


def _closest(buf: deque[Stamped], t: int) -> Stamped:
    """The message stamped closest to ``t``; the newer one on a tie.

    A buffer is in stamp order (a stamp going backwards resets it), so the scan runs from the newest
    message and stops at the first one not after ``t``: the ones before it are farther away.
    """
    best = None
    for m in reversed(buf):
        if best is None or abs(m.stamp_ns - t) < abs(best.stamp_ns - t):
            best = m
        if m.stamp_ns <= t:
            break
    return best
