"""``wamdiff record --topics ... --out OUT.mcap``: record live topics into a rosbag2 MCAP bag.

Subscriptions are raw (``create_subscription(..., raw=True)``): messages are written as the serialized
bytes that arrived, stamped with the recorder's clock at reception (sim time with
``use_sim_time``), as ``ros2 bag record`` does. Message types come from the ROS graph; the recorder
waits (bounded by ``--wait``) for the topics to appear, records the ones that did, and keeps looking
for the others while it records. QoS follows the publishers (reliable / transient local only when all
publishers offer it), so best-effort sensor topics are recorded too.

The bag is written by :class:`wamdiff_ros.data.raw_bag.RawBagWriter`: into a hidden temporary
directory, renamed into place when recording ends, by ``--duration`` or by Ctrl-C / SIGTERM (which
finish the bag, so nothing recorded is lost). rclpy is imported inside functions (fast ``--help``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from wamdiff_ros.data.raw_bag import RawBagWriter

NODE_NAME = "wamdiff_record"
DISCOVERY_PERIOD_S = 0.25
RECORD_DEPTH = 100


def adapted_qos(profiles: list):
    """A subscription QoS compatible with every offered publisher profile (``ros2 bag record``'s rule)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(profiles) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = bool(profiles) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=RECORD_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class BagRecorder:
    """Raw subscriptions on ``node`` for ``topics``, written to ``out`` as they arrive.

    Call :meth:`discover` (periodically) to subscribe to topics as they appear on the graph, spin the
    node, then :meth:`close` (bag moved into place) or :meth:`abort` (nothing written).

    Attributes:
        types: topic -> message type, for the topics subscribed so far.
        unsupported: topic -> reason, for topics seen but not recordable (unknown type, several types).
    """

    def __init__(self, node, topics: list[str], out, *, overwrite: bool = False):
        topics = list(dict.fromkeys(topics))
        bad = [t for t in topics if not t.startswith("/")]
        if not topics or bad:
            raise ValueError(f"--topics: expected absolute topic names such as /ego/odom, got {topics}")
        self.node = node
        self.wanted = topics
        self.writer = RawBagWriter(out, overwrite=overwrite)
        self.types: dict[str, str] = {}
        self.unsupported: dict[str, str] = {}
        self._subs: list = []

    @property
    def missing(self) -> list[str]:
        return [t for t in self.wanted if t not in self.types and t not in self.unsupported]

    def discover(self) -> list[str]:
        """Subscribe to wanted topics that now have publishers; returns the topics newly subscribed."""
        graph = dict(self.node.get_topic_names_and_types())
        new = []
        for topic in self.missing:
            types = graph.get(topic)
            if not types:
                continue
            log = self.node.get_logger()
            if len(types) > 1:
                self.unsupported[topic] = f"published with several types {types}"
                log.warning(f"{topic}: {self.unsupported[topic]}; not recorded")
                continue
            msgtype = types[0]
            if not RawBagWriter.known_type(msgtype):
                self.unsupported[topic] = f"{msgtype} is not in the ROS 2 typestore"
                log.warning(f"{topic}: {self.unsupported[topic]}; not recorded")
                continue
            from wamdiff_ros.ros.bag_player import message_class

            cls = message_class(msgtype)
            if cls is None:
                self.unsupported[topic] = f"{msgtype} has no ROS Python package here"
                log.warning(f"{topic}: {self.unsupported[topic]}; not recorded")
                continue
            self.subscribe(
                topic, msgtype, adapted_qos([i.qos_profile for i in self.node.get_publishers_info_by_topic(topic)])
            )
            new.append(topic)
        return new

    def subscribe(self, topic: str, msgtype: str, qos):
        """Record ``topic`` as ``msgtype`` (``pkg/msg/Name``) with ``qos`` from now on, whether or not it has
        publishers yet (for callers that know the type, so the first messages are not lost to discovery).
        Returns the subscription."""
        from wamdiff_ros.ros.bag_player import message_class

        if topic not in self.wanted:
            raise ValueError(f"{topic}: not one of the topics to record {self.wanted}")
        cls = message_class(msgtype)
        if cls is None or not RawBagWriter.known_type(msgtype):
            raise ValueError(f"{topic}: cannot record {msgtype} here (not in the typestore or no ROS Python package)")
        self.writer.add_topic(topic, msgtype)
        sub = self.node.create_subscription(cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True)
        self._subs.append(sub)
        self.types[topic] = msgtype
        return sub

    def _on_message(self, topic: str, data: bytes) -> None:
        if not self.writer.closed:
            self.writer.write(topic, self.node.get_clock().now().nanoseconds, data)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.writer.counts)

    def _release(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    def close(self):
        """Stop recording and move the bag into place; returns the bag directory."""
        self._release()
        return self.writer.close()

    def abort(self) -> None:
        self._release()
        self.writer.abort()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topics", nargs="+", required=True, help="topics to record")
    parser.add_argument("--out", required=True, help="bag name: OUT.mcap (or OUT) writes the directory OUT/")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="S",
        help="wait at most S seconds for the topics to appear (default 10)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag of the same name")
    parser.add_argument("--use-sim-time", action="store_true", help="stamp messages with /clock time")


def record(node, recorder: BagRecorder, stop: threading.Event, duration: float | None, wait: float) -> str | None:
    """Spin ``node`` and record until ``stop`` or ``duration`` [s] (wall); None, or why nothing was recorded."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    log = node.get_logger()
    try:
        deadline = time.monotonic() + wait
        while recorder.missing and time.monotonic() < deadline and not stop.is_set():
            recorder.discover()
            executor.spin_once(timeout_sec=0.05)
        if not recorder.types:
            return f"none of {recorder.wanted} appeared within {wait:g} s"
        if recorder.missing:
            log.warning(f"not (yet) published: {recorder.missing}; recording the others and still looking")
        log.info(f"recording {sorted(recorder.types)} to {recorder.writer.bag_dir}")
        start = time.monotonic()
        next_discovery = start
        while not stop.is_set() and (duration is None or time.monotonic() - start < duration):
            if recorder.missing and time.monotonic() >= next_discovery:
                for topic in recorder.discover():
                    log.info(f"now recording {topic}")
                next_discovery = time.monotonic() + DISCOVERY_PERIOD_S
            executor.spin_once(timeout_sec=0.05)
        return None
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)


def main(args: argparse.Namespace) -> int:
    """``wamdiff record``."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    if args.duration is not None and not args.duration > 0:
        print(f"wamdiff record: --duration: expected > 0 s, got {args.duration}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = recorder = None
    try:
        from rclpy.parameter import Parameter

        overrides = [Parameter("use_sim_time", value=True)] if args.use_sim_time else []
        node = rclpy.create_node(NODE_NAME, parameter_overrides=overrides)
        try:
            recorder = BagRecorder(node, args.topics, args.out, overwrite=args.overwrite)
        except (ValueError, FileExistsError) as e:
            print(f"wamdiff record: {e}", file=sys.stderr)
            return 2
        problem = record(node, recorder, stop, args.duration, args.wait)
        if problem:
            recorder.abort()
            print(f"wamdiff record: {problem}; nothing written", file=sys.stderr)
            return 1
        counts = recorder.counts
        path = recorder.close()
        summary = ", ".join(f"{t} {n}" for t, n in counts.items())
        print(f"wamdiff record: wrote {path} ({sum(counts.values())} messages: {summary})", file=sys.stderr)
        return 0
    except BaseException:
        if recorder is not None and not recorder.writer.closed:
            recorder.close()  # keep what was recorded
        raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
