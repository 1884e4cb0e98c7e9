"""``wamdiff play BAG`` and the ``bag_player`` node: publish a bag's messages through rclpy, on time.

``ros2 bag play`` semantics (timing in :mod:`wamdiff_ros.data.playback`): messages go out as the
serialized bytes stored in the bag (``Publisher.publish(bytes)``), with their recorded spacing divided
by ``--rate``; ``--clock`` publishes the playback time on /clock (and the bag's own /clock is not
played); ``--loop`` starts over; ``--topics`` and ``--remap FROM:=TO`` choose and rename topics.
Publishers use the message class of each recorded type (``<pkg>.msg.<Name>``); types with no ROS
Python package here (``wamdiff_msgs/*`` ground truth) are skipped with a one-line warning. Ctrl-C (or
SIGTERM) stops playback cleanly.

As a graph node (``config/graphs/replay.yaml``) the same options are ROS parameters: ``bag``, ``rate``,
``loop``, ``clock``, ``clock_hz``, ``topics`` and ``remaps`` (string arrays), ``start_offset``, ``delay``
and ``duration`` (0: to the end).

rclpy is imported inside functions so that ``wamdiff --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from wamdiff_ros.data.playback import CLOCK_TOPIC, PlaybackOptions, PlaybackStats, run_playback
from wamdiff_ros.data.raw_bag import RawBagReader, RawMessage
from wamdiff_ros.data.remap import add_remap_argument, parse_remaps
from wamdiff_ros.ros.interrupts import interrupt_once
from wamdiff_ros.stamps import split_ns

NODE_NAME = "bag_player"
PUBLISH_DEPTH = 10


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name``, or None when ``pkg`` has no Python package here.

    ValueError for a name not of the form ``pkg/msg/Name``."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type {msgtype!r}: expected pkg/msg/Name")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError:
        return None
    return getattr(module, name, None)


class BagPlayer:
    """Publishers for a bag's topics on an existing rclpy ``node``, and the playback loop.

    Args:
        node: the rclpy node to publish from (a player node, a benchmark, a test).
        bag: bag directory or ``.mcap`` file.
        options: see :class:`wamdiff_ros.data.playback.PlaybackOptions`.
        on_publish: called with ``(message, monotonic time after publishing)`` (benchmarks time frames).

    Attributes:
        topics: bag topic -> published topic name, for the topics actually played.
        skipped: bag topic -> message type, for topics with no ROS Python type here.
    """

    def __init__(
        self, node, bag, options: PlaybackOptions, on_publish: Callable[[RawMessage, float], None] | None = None
    ):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self.node = node
        self.options = options
        self.reader = RawBagReader(bag)
        self.on_publish = on_publish
        wanted = options.played_topics(self.reader.topics)
        qos = QoSProfile(depth=PUBLISH_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self.topics: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self._pubs: dict[str, object] = {}
        for topic, msgtype in wanted.items():
            cls = message_class(msgtype)
            if cls is None:
                self.skipped[topic] = msgtype
                node.get_logger().warning(f"{topic}: {msgtype} has no ROS Python package here; not played")
                continue
            out = options.remaps.get(topic, topic)
            self._pubs[topic] = node.create_publisher(cls, out, qos)
            self.topics[topic] = out
        if not self._pubs:
            self.reader.close()
            raise ValueError(f"{self.reader.path}: none of the topics {sorted(wanted)} can be published here")
        self._clock_msg = Clock
        self._clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, qos) if options.clock else None

    def publisher(self, topic: str):
        """The publisher of bag topic ``topic`` (for waiting on subscribers)."""
        return self._pubs[topic]

    def _publish(self, msg: RawMessage) -> None:
        self._pubs[msg.topic].publish(msg.data)
        if self.on_publish is not None:
            self.on_publish(msg, time.monotonic())

    def _publish_clock(self, ns: int) -> None:
        from builtin_interfaces.msg import Time

        sec, nanosec = split_ns(ns)
        self._clock_pub.publish(self._clock_msg(clock=Time(sec=sec, nanosec=nanosec)))

    def play(
        self,
        stop: threading.Event | None = None,
        clock_tail_s: float = 0.0,
        rate: float | None = None,
        duration: float | None = None,
    ) -> PlaybackStats:
        """Play the bag (once, or until ``stop`` with ``loop``); returns what was done. ``rate`` and
        ``duration`` override the options' for this call (benchmarks replay at several rates)."""
        topics = list(self._pubs)
        options = self.options
        if rate is not None or duration is not None:
            options = replace(
                options, rate=options.rate if rate is None else rate, duration=duration or options.duration
            )
        return run_playback(
            lambda start: self.reader.messages(topics, start),
            self.reader.start_ns,
            self._publish,
            options,
            publish_clock=self._publish_clock if self._clock_pub is not None else None,
            stop=stop,
            clock_tail_s=clock_tail_s,
        )

    def close(self) -> None:
        for pub in self._pubs.values():
            self.node.destroy_publisher(pub)
        if self._clock_pub is not None:
            self.node.destroy_publisher(self._clock_pub)
        self._pubs, self._clock_pub = {}, None
        self.reader.close()


# ---- wamdiff play ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory or .mcap file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    parser.add_argument(
        "--clock",
        nargs="?",
        type=float,
        const=40.0,
        default=None,
        metavar="HZ",
        help="publish the playback time on /clock at HZ (default 40); the bag's own /clock is then skipped",
    )
    parser.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl-C)")
    parser.add_argument("--topics", nargs="+", default=None, help="topics to play (default: all)")
    add_remap_argument(parser, "publish bag topic FROM as topic TO")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the bag's first S seconds")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S", help="wait S seconds before playing")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="play only S seconds of the bag")


def options_from_args(args: argparse.Namespace) -> PlaybackOptions:
    return PlaybackOptions(
        rate=args.rate,
        loop=args.loop,
        topics=tuple(args.topics) if args.topics else None,
        remaps=parse_remaps(args.remap),
        start_offset=args.start_offset,
        clock=args.clock is not None,
        clock_hz=args.clock if args.clock is not None else 40.0,
        delay=args.delay,
        duration=args.duration,
    )


def _stop_on_signals() -> tuple[threading.Event, dict]:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    return stop, previous


def _play(node_factory, options: PlaybackOptions, bag: str, argv: list[str] | None) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    stop, previous = _stop_on_signals()
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = player = None
    try:
        node, bag, options = node_factory(bag, options)
        player = BagPlayer(node, bag, options)
        log = node.get_logger()
        remapped = {k: v for k, v in player.topics.items() if k != v}
        log.info(
            f"playing {player.reader.path}: {len(player.topics)} topics at rate {options.rate:g}"
            + (f", /clock at {options.clock_hz:g} Hz" if options.clock else "")
            + (f", remapped {remapped}" if remapped else "")
            + (", looping" if options.loop else "")
        )
        stats = player.play(stop)
        log.info(
            f"{'stopped' if stats.stopped else 'done'}: {stats.messages} messages in {stats.wall_s:.2f} s "
            f"({stats.passes} pass(es), worst lateness {stats.max_late_s * 1e3:.1f} ms)"
        )
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"{NODE_NAME}: {e}", file=sys.stderr)
        return 2
    finally:
        if player is not None:
            player.close()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(args: argparse.Namespace) -> int:
    """``wamdiff play``."""
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"wamdiff play: {e}", file=sys.stderr)
        return 2

    def make(bag, options):
        import rclpy

        return rclpy.create_node("wamdiff_play"), bag, options

    return _play(make, options, args.bag, None)


# ---- bag_player node executable ---------------------------------------------------------------------


def _node_from_parameters(bag, options):
    """A ``bag_player`` node whose parameters give the bag and the options (``--ros-args -p ...``)."""
    import rclpy
    from rclpy.exceptions import ParameterUninitializedException
    from rclpy.parameter import Parameter

    node = rclpy.create_node(NODE_NAME)
    node.declare_parameter("bag", "")
    node.declare_parameter("rate", 1.0)
    node.declare_parameter("loop", False)
    node.declare_parameter("clock", False)
    node.declare_parameter("clock_hz", 40.0)
    node.declare_parameter("start_offset", 0.0)
    node.declare_parameter("delay", 0.0)
    node.declare_parameter("duration", 0.0)
    node.declare_parameter("topics", Parameter.Type.STRING_ARRAY)
    node.declare_parameter("remaps", Parameter.Type.STRING_ARRAY)

    def get(name, default=None):
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            return default
        return default if value is None else value

    bag = get("bag")
    if not bag:
        node.destroy_node()
        raise ValueError("parameter 'bag': expected the path of a rosbag2 directory or .mcap file")
    topics = [t for t in get("topics", []) if t]
    try:
        options = PlaybackOptions(
            rate=float(get("rate")),
            loop=bool(get("loop")),
            topics=tuple(topics) if topics else None,
            remaps=parse_remaps([r for r in get("remaps", []) if r]),
            start_offset=float(get("start_offset")),
            clock=bool(get("clock")),
            clock_hz=float(get("clock_hz")),
            delay=float(get("delay")),
            duration=float(get("duration")) or None,
        )
    except ValueError:
        node.destroy_node()
        raise
    return node, bag, options


@interrupt_once
def node_main(argv: list[str] | None = None) -> int:
    """``bag_player --ros-args -p bag:=PATH [-p rate:=2.0 ...]`` (console script and ``python -m``)."""
    return _play(_node_from_parameters, PlaybackOptions(), "", sys.argv if argv is None else argv)


if __name__ == "__main__":
    sys.exit(node_main())
