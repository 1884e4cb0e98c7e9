"""Planner trajectories keyed by their header stamp, for a simulator bridge that waits for the plan of
the tick it just published (exact stamp match in integer nanoseconds, bounded wall-clock wait, Ctrl-C
aware)."""

from __future__ import annotations

import threading
import time

from nav_msgs.msg import Path as PathMsg

from wamdiff_ros.stamps import time_ns


class Shutdown(Exception):
    """The ROS context went down (Ctrl-C) while a bridge was waiting."""


class PathInbox:
    """Keeps the newest ``keep`` Paths by stamp; :meth:`put` is the subscription callback."""

    def __init__(self, context, keep: int = 50):
        self._context = context
        self._keep = int(keep)
        self._paths: dict[int, PathMsg] = {}
        self._cond = threading.Condition()

    def put(self, msg: PathMsg) -> None:
        key = time_ns(msg.header.stamp)
        with self._cond:
            self._paths[key] = msg
            if len(self._paths) > self._keep:
                for k in sorted(self._paths)[: -self._keep]:
                    del self._paths[k]
            self._cond.notify_all()

    def wait(self, stamp_ns: int, timeout: float) -> PathMsg | None:
        """The Path stamped ``stamp_ns`` [ns], waiting up to ``timeout`` s of wall time; Shutdown if ROS goes down."""
        key = stamp_ns
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._paths:
                if not self._context.ok():
                    raise Shutdown()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))
            return self._paths.pop(key)
