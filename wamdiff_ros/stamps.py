"""Time stamps as integer nanoseconds, the unit they travel in from message to message.

A ``builtin_interfaces/Time`` is ``(sec, nanosec)``; float seconds cannot hold an epoch-sized stamp to
the nanosecond (a double has about 16 significant digits), so an output that answers an input carries
the input's integer stamp, and seconds are computed only where arithmetic needs them.
"""

from __future__ import annotations

import math
import operator

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    """Finite seconds -> integer nanoseconds (rounded)."""
    if not math.isfinite(seconds):
        raise ValueError(f"stamp: expected a finite time in seconds, got {seconds}")
    return round(seconds * NS_PER_S)


def ns_to_seconds(ns: int) -> float:
    """Integer nanoseconds -> float seconds (for arithmetic; not exact for epoch-sized stamps)."""
    return ns / NS_PER_S


def as_ns(value) -> int:
    """``value`` as a Python int of nanoseconds; ValueError for a float or anything not integral (a float
    stamp would already have lost the nanoseconds an exact answer needs)."""
    if isinstance(value, bool):
        raise ValueError(f"stamp: expected integer nanoseconds, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"stamp: expected integer nanoseconds, got {type(value).__name__} {value!r}") from None


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds (>= 0) -> ``(sec, nanosec)`` of a ``builtin_interfaces/Time``; ValueError otherwise."""
    ns = as_ns(ns)
    if ns < 0:
        raise ValueError(f"stamp: expected integer nanoseconds >= 0, got {ns}")
    return ns // NS_PER_S, ns % NS_PER_S


def join_ns(sec: int, nanosec: int) -> int:
    """``(sec, nanosec)`` of a ``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(sec) * NS_PER_S + int(nanosec)


def time_ns(t) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time`` (rclpy's or rosbags')."""
    return join_ns(t.sec, t.nanosec)


def past_frame_index(stamps_ns, age_s: float, usable=None) -> int:
    """Index of the frame to pair with the last of ``stamps_ns`` (ascending) as its past frame: of the
    usable frames up to and including the last, the one stamped closest to ``age_s`` before it (the
    earlier on a tie; the last itself when no other is usable). Training data and the planning loop
    pick past frames by this one rule."""
    target = int(stamps_ns[-1]) - seconds_to_ns(age_s)
    ok = [i for i in range(len(stamps_ns)) if usable is None or usable[i]]
    if not ok:
        return len(stamps_ns) - 1
    return min(ok, key=lambda i: (abs(int(stamps_ns[i]) - target), i))
