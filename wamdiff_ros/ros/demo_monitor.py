"""The demo's own ROS side: one node in the ``wamdiff demo`` process, spun in a background thread.

It records the topics the episode video needs into a bag (the :class:`~wamdiff_ros.ros.bag_recorder.BagRecorder`
of ``wamdiff record``, stamped on sim time; subscribed before the graph starts, with the types known, so
the first ticks are not lost to discovery; latched topics with a transient-local subscription) and
watches the graph: the planner's per-cycle
``~/debug/processing_time_ms``, its latest ``/diagnostics`` values (plan counts, fast/slow, MoE load)
and the bridge's ``~/episode_metrics``, handed to a callback as they arrive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64, String

from wamdiff_ros.ros.bag_recorder import BagRecorder

NODE_NAME = "wamdiff_demo"


class DemoMonitor:
    """Start with :meth:`start`, end with :meth:`close` (bag moved into place; returns its directory).

    Attributes (read after :meth:`close`, or any time under no lock for progress):
        processing_ms: the planner's cycle times [ms], in arrival order.
        diagnostics: key -> value of the newest /diagnostics status named ``<planner>: …``.
        episodes: the bridge's per-episode metrics records, in order.
    """

    def __init__(
        self,
        record_topics: dict[str, str],
        bag_out,
        latched: tuple[str, ...] = (),
        planner: str = "planner_node",
        bridge: str = "sim_bridge_node",
        on_episode: Callable[[dict], None] | None = None,
    ):
        self.processing_ms: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self._diagnostics_at = 0.0
        self.episodes: list[dict] = []
        self._planner = planner
        self._on_episode = on_episode
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(
                NODE_NAME, context=self.context, parameter_overrides=[Parameter("use_sim_time", value=True)]
            )
            self.recorder = BagRecorder(self.node, list(record_topics), bag_out, overwrite=True)
            reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            durable = QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
            )
            self._subs = {
                topic: self.recorder.subscribe(topic, msgtype, durable if topic in latched else reliable)
                for topic, msgtype in record_topics.items()
            }
            self.processing_topic = f"/{planner}/debug/processing_time_ms"
            self._subs[self.processing_topic] = self.node.create_subscription(
                Float64, self.processing_topic, lambda m: self.processing_ms.append(m.data), reliable
            )
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
            self.node.create_subscription(String, f"/{bridge}/episode_metrics", self._on_metrics, reliable)
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{self._planner}:"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self._diagnostics_at = time.monotonic()

    def wait_diagnostics(self, after: float, timeout: float) -> bool:
        """Wait up to ``timeout`` s for planner diagnostics received after monotonic time ``after`` (the
        planner publishes them on the steady clock, also once the simulator has stopped /clock)."""
        deadline = time.monotonic() + timeout
        while self._diagnostics_at <= after and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._diagnostics_at > after

    def _on_metrics(self, msg: String) -> None:
        record = json.loads(msg.data)
        self.episodes.append(record)
        if self._on_episode is not None:
            self._on_episode(record)

    def start(self) -> DemoMonitor:
        self._thread = threading.Thread(target=self._spin, name="wamdiff_demo.monitor", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        try:
            while not self._stop.is_set() and self.context.ok():
                executor.spin_once(timeout_sec=0.05)
        except BaseException as e:
            self._errors.append(e)
        finally:
            executor.remove_node(self.node)
            executor.shutdown(timeout_sec=1.0)

    def matched(self, topics: list[str]) -> bool:
        """Whether each of ``topics`` (recorded or the processing time) has a publisher matched to this node."""
        return all(self._subs[t].get_publisher_count() > 0 for t in topics)

    def close(self, settle_s: float = 0.5):
        """Let in-flight messages arrive (``settle_s`` wall seconds), stop, write the bag; returns the bag
        directory, or None if nothing was received (nothing written)."""
        if self._thread is not None and self._thread.is_alive():
            time.sleep(settle_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        try:
            if self._errors:
                raise RuntimeError(f"demo monitor: spinning failed: {self._errors[0]!r}") from self._errors[0]
            if not sum(self.recorder.counts.values()):
                self.recorder.abort()
                return None
            return self.recorder.close()
        finally:
            if not self.recorder.writer.closed:
                self.recorder.abort()
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)
