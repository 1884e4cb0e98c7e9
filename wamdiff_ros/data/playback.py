"""Bag playback timing with ``ros2 bag play`` semantics, independent of any middleware.

:func:`run_playback` walks a bag's messages in log-time order and hands each to ``publish`` when it is
due: message ``m`` is due ``(m.log_ns - base) / rate`` ns after playback starts, where ``base`` is the
first message's log time plus ``start_offset``. Deadlines are absolute (from the start of the pass), so
a slow ``publish`` never accumulates drift. With ``clock`` a clock callback is called every
``1 / clock_hz`` s of wall time with the current bag time (``base + elapsed · rate``), as ``ros2 bag
play --clock`` publishes /clock. ``loop`` starts over (the bag time jumps back) until stopped.

The rclpy side (publishers, /clock messages) is :mod:`wamdiff_ros.ros.bag_player`.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from wamdiff_ros.data.raw_bag import RawMessage
from wamdiff_ros.stamps import NS_PER_S, join_ns

CLOCK_TOPIC = "/clock"


@dataclass
class PlaybackOptions:
    """How to play a bag.

    Attributes:
        rate: playback speed factor (2.0: twice as fast), > 0.
        loop: start over at the end until stopped.
        topics: topics to play (None: all the bag has).
        remaps: bag topic -> published topic.
        start_offset: skip this much of the bag's beginning [s], >= 0.
        clock: publish the playback time on /clock (the bag's own /clock is then not played).
        clock_hz: /clock publishing frequency [Hz] of wall time, > 0.
        delay: wait this long before playing [s], >= 0.
        duration: play only this much of the bag after ``start_offset`` [s] (None: to the end), > 0.
    """

    rate: float = 1.0
    loop: bool = False
    topics: tuple[str, ...] | None = None
    remaps: dict[str, str] = field(default_factory=dict)
    start_offset: float = 0.0
    clock: bool = False
    clock_hz: float = 40.0
    delay: float = 0.0
    duration: float | None = None

    def __post_init__(self):
        checks = [("rate", self.rate, "> 0"), ("clock_hz", self.clock_hz, "> 0")]
        checks += [("start_offset", self.start_offset, ">= 0"), ("delay", self.delay, ">= 0")]
        if self.duration is not None:
            checks.append(("duration", self.duration, "> 0"))
        for name, value, rule in checks:
            ok = isinstance(value, int | float) and math.isfinite(value)
            if not (ok and (value > 0 if rule == "> 0" else value >= 0)):
                raise ValueError(f"PlaybackOptions.{name}: expected a finite number {rule}, got {value!r}")
        if self.topics is not None:
            self.topics = tuple(self.topics)
            if not self.topics:
                raise ValueError("PlaybackOptions.topics: expected at least one topic (or None for all)")

    def played_topics(self, available: dict[str, str]) -> dict[str, str]:
        """Bag topics (-> type) this playback publishes; ValueError naming topics or remap sources the bag
        lacks. With ``clock`` the bag's own /clock is left out."""
        wanted = list(available) if self.topics is None else list(self.topics)
        unknown = [t for t in wanted if t not in available]
        if unknown:
            raise ValueError(f"--topics: {unknown} not in the bag (it has {sorted(available)})")
        topics = {t: available[t] for t in wanted if not (self.clock and t == CLOCK_TOPIC)}
        stray = sorted(set(self.remaps) - set(topics))
        if stray:
            raise ValueError(f"--remap: {stray} are not among the played topics {sorted(topics)}")
        return topics


@dataclass
class PlaybackStats:
    """What a playback did: messages published, passes over the bag, clock messages, wall time [s] and
    the worst lateness of a publish after its due time [s]."""

    messages: int = 0
    passes: int = 0
    clock_messages: int = 0
    wall_s: float = 0.0
    max_late_s: float = 0.0
    stopped: bool = False


def due_times(log_ns: Sequence[int], rate: float, base_ns: int | None = None) -> list[float]:
    """Wall offsets [s] after the start of a pass at which messages with these log times are due."""
    if not log_ns:
        return []
    base = log_ns[0] if base_ns is None else base_ns
    return [(t - base) * 1e-9 / rate for t in log_ns]


def run_playback(
    messages: Callable[[int | None], Iterable[RawMessage]],
    first_ns: int,
    publish: Callable[[RawMessage], None],
    options: PlaybackOptions,
    *,
    publish_clock: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    now: Callable[[], float] = time.monotonic,
    wait: Callable[[float], bool] | None = None,
    clock_tail_s: float = 0.0,
) -> PlaybackStats:
    """Play ``messages(start_ns)`` (a fresh iterator per pass, in log-time order) on time.

    Args:
        messages: ``start_ns -> messages`` with log time >= ``start_ns``.
        first_ns: log time of the bag's first message [ns] (start_offset counts from there).
        publish: called with each message when due.
        options: rate, loop, offset, clock, delay.
        publish_clock: called with the bag time [ns] every ``1 / clock_hz`` s when ``options.clock``.
        stop: set it to end playback (checked while waiting and between messages).
        now, wait: monotonic clock [s] and ``wait(seconds) -> stopped`` (tests pass fakes).
        clock_tail_s: keep the clock running this long [s] after each pass's last message (a benchmark
            lets timers on the played clock fire once more; ``ros2 bag play`` stops it at once).
    """
    stop = stop or threading.Event()
    wait = wait or stop.wait
    clock = publish_clock if options.clock else None
    clock_period = 1.0 / options.clock_hz
    base = int(first_ns + round(options.start_offset * 1e9))
    end = None if options.duration is None else base + round(options.duration * 1e9)
    stats = PlaybackStats()
    t_start = now()
    if options.delay > 0 and wait(options.delay):
        stats.stopped = True
        return stats
    while not stop.is_set():
        wall0 = now()
        next_clock = wall0
        published_before = stats.messages

        def bag_ns(t: float, wall0=wall0) -> int:
            return base + round((t - wall0) * options.rate * 1e9)

        def wait_until(due: float) -> bool:
            """Wait until wall time ``due``, ticking the clock; True when stopped."""
            nonlocal next_clock
            while True:
                t = now()
                if clock is not None and t >= next_clock:
                    clock(bag_ns(t))
                    stats.clock_messages += 1
                    next_clock += clock_period * (math.floor((t - next_clock) / clock_period) + 1)
                if t >= due:
                    return stop.is_set()
                target = min(due, next_clock) if clock is not None else due
                if wait(max(0.0, target - t)):
                    return True

        for msg in messages(base):
            if msg.log_ns < base:
                continue
            if end is not None and msg.log_ns > end:
                break
            due = wall0 + (msg.log_ns - base) * 1e-9 / options.rate
            if wait_until(due):
                stats.stopped = True
                break
            publish(msg)
            stats.max_late_s = max(stats.max_late_s, now() - due)
            stats.messages += 1
        if stats.stopped:
            break
        if clock is not None and clock_tail_s > 0 and wait_until(now() + clock_tail_s):
            stats.stopped = True
            break
        stats.passes += 1
        if not options.loop or stats.messages == published_before:
            break
    stats.stopped = stats.stopped or stop.is_set()
    stats.wall_s = now() - t_start
    return stats


def header_stamp_ns(data: bytes) -> int | None:
    """``header.stamp`` [ns] of a serialized message that starts with a ``std_msgs/Header`` (Image,
    CompressedImage, CameraInfo, Odometry, Path, …): its first two CDR fields after the 4-byte
    encapsulation header; None if ``data`` is too short or not plain CDR."""
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        return None
    order = "<" if data[1] == 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    if nanosec >= NS_PER_S:
        return None
    return join_ns(sec, nanosec)
