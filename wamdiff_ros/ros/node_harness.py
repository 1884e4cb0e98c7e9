"""The rclpy side of ``wamdiff bench node`` (:mod:`wamdiff_ros.bench.node`): a probe node that plays the
bag into a running planner_node and records what comes back, and the measured passes per frame rate."""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.bench.node import frame_latencies, jitter_ms, process_cpu_s

DIAG_WAIT_S = 5.0
"""Plan / fallback counts are read from a /diagnostics message sent after a pass (the node's own period)."""
IDLE_S = 2.0
"""The node's CPU is also measured this long with no input (its baseline: executor, timers)."""
DEBUG_TOPICS = ("processing_time_ms", "planner_time_ms")
"""The node's ``~/debug/*`` Float64 topics the probe records: its cycle, and the planner's call within it."""


@dataclass
class NodeMeasurement:
    """What :func:`measure_node` measured: ``rows`` (one per rate, latencies in ms, CPU in % of a core),
    ``iterations`` (one per pass), the node's idle CPU [%] and how receive times were taken."""

    rows: list[dict]
    iterations: list[dict]
    idle_cpu_pct: float
    receive_time: str


def reception_timestamps() -> bool:
    """Whether rclpy hands two-argument subscription callbacks a MessageInfo with the middleware's
    reception timestamp (Iron and later; not Humble)."""
    from rclpy.subscription import Subscription

    kinds = getattr(Subscription, "CallbackType", None)
    return kinds is not None and hasattr(kinds, "WithMessageInfo")


class NodeProbe:
    """The benchmark's rclpy side: a node holding the player, the trajectory and /diagnostics subscribers."""

    def __init__(
        self, context, bag: str, topics: list[str], sync_topics: set[str], clock_hz: float, remaps: dict[str, str]
    ):
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path as PathMsg
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile
        from std_msgs.msg import Float64

        from wamdiff_ros.data.playback import PlaybackOptions, header_stamp_ns
        from wamdiff_ros.ros.bag_player import BagPlayer

        self.node = Node("wamdiff_bench_node", context=context)
        self.sync_topics = sync_topics
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.received_callback: dict[int, float] = {}
        self.diag_time = 0.0
        self.debug: dict[str, list[float]] = {name: [] for name in DEBUG_TOPICS}
        self.diag: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stamp = header_stamp_ns

        def on_publish(msg, t):
            if msg.topic in self.sync_topics:
                stamp = self._stamp(msg.data)
                if stamp is not None:
                    with self._lock:
                        self.sent[stamp] = max(self.sent.get(stamp, t), t)

        self.player = BagPlayer(
            self.node,
            bag,
            PlaybackOptions(topics=tuple(topics), remaps=remaps, clock=True, clock_hz=clock_hz),
            on_publish,
        )
        on_path = self._on_path_with_info if reception_timestamps() else self._on_path
        self.node.create_subscription(PathMsg, "/planner_node/trajectory", on_path, QoSProfile(depth=100))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, QoSProfile(depth=10))
        for name in DEBUG_TOPICS:
            self.node.create_subscription(
                Float64, f"/planner_node/debug/{name}", lambda m, n=name: self._on_debug(n, m), QoSProfile(depth=100)
            )
        # One thread: a MultiThreadedExecutor's dispatch loop costs a core's worth of GIL and CPU on a
        # 2-core machine, which the node under test would then lose.
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.node.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self.node.context.ok():
                    raise

    def _on_path(self, msg, received: float | None = None) -> None:
        t = time.monotonic()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.received.setdefault(stamp, t if received is None else received)
            self.received_callback.setdefault(stamp, t)

    def _on_path_with_info(self, msg, info) -> None:
        """As :meth:`_on_path`, timed at the middleware's reception (system clock ns, moved to monotonic)."""
        ns = info.get("received_timestamp", 0)
        self._on_path(msg, time.monotonic() - (time.time_ns() - ns) * 1e-9 if ns > 0 else None)

    def _on_debug(self, name: str, msg) -> None:
        with self._lock:
            self.debug[name].append(float(msg.data))

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("planner_node"):
                with self._lock:
                    self.diag = {kv.key: kv.value for kv in status.values}
                    self.diag_time = time.monotonic()

    def fresh_diagnostics(self, after: float, timeout: float) -> dict:
        """The node's diagnostic values from a message received after monotonic time ``after`` (waits up
        to ``timeout`` s for one; the last seen otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.diag_time > after:
                    return dict(self.diag)
            time.sleep(0.05)
        with self._lock:
            return dict(self.diag)

    def reset(self) -> None:
        with self._lock:
            self.sent, self.received, self.received_callback = {}, {}, {}
            self.debug = {name: [] for name in DEBUG_TOPICS}

    def snapshot(self) -> tuple[dict, dict]:
        """Frame stamp -> publish time and -> reception time, as recorded so far."""
        with self._lock:
            return dict(self.sent), dict(self.received)

    def callback_times(self) -> dict[int, float]:
        """Frame stamp -> monotonic time the probe's trajectory callback ran."""
        with self._lock:
            return dict(self.received_callback)

    def debug_ms(self, name: str) -> list[float]:
        """Values of the node's ``~/debug/<name>`` topic (see :data:`DEBUG_TOPICS`) since :meth:`reset`."""
        with self._lock:
            return list(self.debug[name])

    def close(self) -> None:
        """Shut the context down (ends the spin thread), then release the executor, player and node."""
        import rclpy

        rclpy.try_shutdown(context=self.node.context)
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.player.close()
        self.node.destroy_node()


def _counts(diag: dict) -> dict[str, int]:
    keys = ("plans", "fallbacks_hold", "fallbacks_stop", "deadline_misses")
    return {k: int(diag.get(k, 0)) for k in keys}


def measure_node(
    proc: subprocess.Popen,
    node_log,
    args: argparse.Namespace,
    topics: list[str],
    sync: set[str],
    remaps: dict[str, str],
    bag_hz: float,
    log=print,
) -> NodeMeasurement:
    """Wait for the planner_node process ``proc`` to come up (RuntimeError with the tail of ``node_log``
    if it does not), measure its idle CPU, then play ``topics`` of ``args.bag`` (``sync``: the topics
    that complete a frame) at each of ``args.rates`` [Hz] after a warm-up pass; ``args`` is the
    command's (rates, iterations, frames, warmup_frames, clock_hz, startup_timeout)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    probe = None
    rows, iterations, idle_cpu = [], [], float("nan")
    try:
        bag_name = {new: old for old, new in remaps.items()}  # the player takes the bag's own names
        sync = {bag_name.get(t, t) for t in sync}
        probe = NodeProbe(context, args.bag, [bag_name.get(t, t) for t in topics], sync, args.clock_hz, remaps)
        deadline = time.monotonic() + args.startup_timeout
        pubs = [probe.player.publisher(t) for t in sync]
        while not all(p.get_subscription_count() > 0 for p in pubs) or not probe.node.count_publishers(
            "/planner_node/trajectory"
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                node_log.seek(0)
                tail = node_log.read()[-2000:]
                raise RuntimeError(f"planner_node did not come up (exit {proc.poll()}):\n{tail}")
            time.sleep(0.1)
        log(f"planner_node up (pid {proc.pid}); bag frames at {bag_hz:.1f} Hz")
        c0, w0 = process_cpu_s(proc.pid), time.monotonic()
        time.sleep(IDLE_S)
        idle_cpu = 100.0 * (process_cpu_s(proc.pid) - c0) / (time.monotonic() - w0)
        period = 1.0 / bag_hz
        if args.warmup_frames:
            probe.player.play(rate=args.rates[0] / bag_hz, duration=args.warmup_frames * period, clock_tail_s=0.3)
            time.sleep(0.5)
        for hz in args.rates:
            rate = hz / bag_hz
            lat_all, missed_all, jit, cpu, frames_all, proc_all, bench_cpu = [], 0, [], [], 0, [], []
            planner_all: list[float] = []
            lat_cb_all = []
            counts0 = _counts(probe.fresh_diagnostics(time.monotonic(), DIAG_WAIT_S))
            counts1 = counts0
            for it in range(args.iterations):
                probe.reset()
                c0, w0, b0 = process_cpu_s(proc.pid), time.monotonic(), process_cpu_s(os.getpid())
                stats = probe.player.play(rate=rate, duration=(args.frames - 0.5) * period, clock_tail_s=0.3 / rate)
                quiet = time.monotonic()
                n_recv = -1
                while time.monotonic() - quiet < 0.5 and time.monotonic() - w0 < stats.wall_s + 5.0:
                    n = len(probe.snapshot()[1])
                    if n != n_recv:
                        n_recv, quiet = n, time.monotonic()
                    time.sleep(0.05)
                c1, w1, b1 = process_cpu_s(proc.pid), time.monotonic(), process_cpu_s(os.getpid())
                sent, received = probe.snapshot()
                proc_all += probe.debug_ms("processing_time_ms")
                planner_all += probe.debug_ms("planner_time_ms")
                lat, missed = frame_latencies(sent, received)
                lat_cb_all.append(frame_latencies(sent, probe.callback_times())[0])
                answered = sorted(s for s in received if s in sent)
                j = jitter_ms([received[s] for s in answered])
                cpu_pct = 100.0 * (c1 - c0) / (w1 - w0)
                bench_cpu.append(100.0 * (b1 - b0) / (w1 - w0))
                counts1 = _counts(probe.fresh_diagnostics(w1, DIAG_WAIT_S))
                iterations.append(
                    {
                        "rate_hz": hz,
                        "iteration": it,
                        "frames": len(sent),
                        "answered": len(answered),
                        "missed": len(missed),
                        "e2e_mean_ms": float(lat.mean()) if len(lat) else None,
                        "e2e_max_ms": float(lat.max()) if len(lat) else None,
                        "jitter_ms": j,
                        "node_cpu_pct": cpu_pct,
                        "playback_max_late_ms": stats.max_late_s * 1e3,
                    }
                )
                lat_all.append(lat)
                missed_all += len(missed)
                frames_all += len(sent)
                jit.append(j)
                cpu.append(cpu_pct)
                log(
                    f"  {hz:g} Hz #{it}: {len(answered)}/{len(sent)} frames, e2e mean "
                    f"{lat.mean() if len(lat) else float('nan'):.2f} ms, node CPU {cpu_pct:.0f}%"
                )
            lat = np.concatenate(lat_all) if lat_all else np.zeros(0)
            lat_cb = np.concatenate(lat_cb_all) if lat_cb_all else np.zeros(0)
            proc_ms = np.asarray(proc_all) if proc_all else np.full(1, np.nan)
            planner_ms = float(np.mean(planner_all)) if planner_all else float("nan")
            delta = {k: counts1[k] - counts0[k] for k in counts0}
            rows.append(
                {
                    "rate_hz": hz,
                    "frames": frames_all,
                    "missed": missed_all,
                    "e2e_mean_ms": float(lat.mean()) if len(lat) else float("nan"),
                    "e2e_p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                    "e2e_p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                    "e2e_max_ms": float(lat.max()) if len(lat) else float("nan"),
                    "e2e_callback_mean_ms": float(lat_cb.mean()) if len(lat_cb) else float("nan"),
                    "e2e_callback_p99_ms": float(np.percentile(lat_cb, 99)) if len(lat_cb) else float("nan"),
                    "jitter_ms": float(np.mean(jit)),
                    "node_cpu_pct": float(np.mean(cpu)),
                    "player_cpu_pct": float(np.mean(bench_cpu)),
                    "node_processing_mean_ms": float(proc_ms.mean()),
                    "node_processing_p50_ms": float(np.percentile(proc_ms, 50)),
                    "node_planner_mean_ms": planner_ms,
                    "ratio_node_planner": float(lat.mean()) / planner_ms if len(lat) else float("nan"),
                    "plans": delta["plans"],
                    "fallbacks": delta["fallbacks_hold"] + delta["fallbacks_stop"],
                    "deadline_misses": delta["deadline_misses"],
                }
            )
    finally:
        if probe is not None:
            probe.close()
        rclpy.try_shutdown(context=context)
    receive_time = "middleware reception timestamp" if reception_timestamps() else "probe callback"
    return NodeMeasurement(rows, iterations, idle_cpu, receive_time)
