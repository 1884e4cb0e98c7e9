"""``wamdiff bench node --bag BAG --model DIR``: the unmodified planner_node under a played bag, in the
manner of ros2_benchmark.

The node runs as its own process, started as a graph would start it (``planner_node --ros-args
--params-file config/planner.param.yaml -p model_path:=… -p use_sim_time:=true``). This process plays
the bag's camera, camera_info, odometry, command and instruction topics into it with
:class:`~wamdiff_ros.ros.bag_player.BagPlayer` (serialized bytes, /clock from the playback at ``--clock-hz``), at each
``--rates`` frame rate (the bag's own frame spacing rescaled), ``--iterations`` times per rate, after a
warm-up pass. Per frame (one camera stamp):

- end-to-end latency: from the moment the frame's last camera / odometry message was published to the
  moment its ``~/trajectory`` (nav_msgs/Path, stamped with the frame's camera stamp) reached this
  process: the middleware's reception timestamp where rclpy hands it over (MessageInfo, Iron and
  later), as a C++ monitor node would see it, so that the Python executor dispatching it here is not
  counted against the node; the probe's callback time is reported beside it (``e2e_callback_*``) and
  is the only one on Humble;
- missed: a frame published complete that never got a trajectory.

Per rate: latency mean / p50 / p99 / max, jitter (std of trajectory inter-arrival times), missed
frames, the node's own cycle time (``~/debug/processing_time_ms``: decoding + planning, so that e2e
− cycle is transport, executor dispatch and sync) and the planner's share of it
(``~/debug/planner_time_ms``: the ``plan`` call alone, timed inside the node on the same frames),
the node's CPU (utime + stime from ``/proc/<pid>/stat`` over wall time; 100 % = one core; also
measured idle, with no input, before playing) and this process's (player and probe, which share the
machine with the node), the node's plan / fallback / deadline-miss counts from /diagnostics, and the
ratio of the node's mean end-to-end latency to the bare planner time: ``planner.plan`` on the same
frames in this process, on the same backend with the same threads, timed before and after the node
runs (target ≤ 1.15 for a network; for a planner that takes microseconds the ratio only measures
transport). The bare planner is also timed once per frame period at each rate
(``bare_paced_mean_ms``): on a VM whose cores idle between frames a plan can take half as long again
as in a tight loop, which the back-to-back figure hides. Beside it, ``ratio_node_planner`` divides
the same end-to-end mean by the planner time measured inside the node in the same passes: what the
node adds over its own planner (decoding, sync, executor, transport), free of the duty-cycle effect.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from wamdiff_ros.data.remap import add_remap_argument, parse_remaps
from wamdiff_ros.ros.executors import EXECUTORS

RATIO_TARGET = 1.15
TABLE_COLUMNS = [
    "rate_hz",
    "frames",
    "missed",
    "e2e_mean_ms",
    "e2e_p99_ms",
    "e2e_callback_mean_ms",
    "jitter_ms",
    "node_processing_mean_ms",
    "bare_mean_ms",
    "bare_paced_mean_ms",
    "node_planner_mean_ms",
    "ratio",
    "ratio_node_planner",
    "node_cpu_pct",
    "fallbacks",
]
"""Printed; the JSON has every figure."""
PACED_FRAMES = 50
"""Frames of the bare planner timed once per frame period at each rate (``bare_paced_mean_ms``: the CPU
idles between plans as it does in the node; ``ratio`` keeps the back-to-back bare time)."""
DIAG_WAIT_S = 5.0
"""Plan / fallback counts are read from a /diagnostics message sent after a pass (the node's own period)."""
IDLE_S = 2.0
"""The node's CPU is also measured this long with no input (its baseline: executor, timers)."""
SYNC_TOPIC_KINDS = ("image", "odom")
DEBUG_TOPICS = ("processing_time_ms", "planner_time_ms")
"""The node's ``~/debug/*`` Float64 topics the probe records: its cycle, and the planner's call within it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bag", required=True, help="rosbag2 directory or .mcap file with the rig's cameras and odometry"
    )
    parser.add_argument("--model", required=True, help="checkpoint folder (absolute, or under models/)")
    add_remap_argument(parser, "play bag topic FROM as topic TO, the name the node subscribes")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 20.0], help="frame rates [Hz] (default 10 20)")
    parser.add_argument("--iterations", type=int, default=5, help="passes per rate (default 5)")
    parser.add_argument("--frames", type=int, default=100, help="frames per pass, from the bag's start (default 100)")
    parser.add_argument("--warmup-frames", type=int, default=10, help="frames of the unmeasured warm-up pass")
    parser.add_argument("--params-file", default=None, help="node parameters (default config/planner.param.yaml)")
    parser.add_argument("--rig", default="rigs/default.yaml", help="rig_path given to the node (the model's rig)")
    parser.add_argument("--budget-ms", type=float, default=80.0, help="planner budget, node and bare alike")
    parser.add_argument(
        "--mode", choices=("adaptive", "fast", "slow"), default="adaptive", help="reasoning_mode, node and bare alike"
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "tensorrt"),
        default=None,
        help="inference backend, node and bare alike (default: the params file's)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="inference CPU threads, node (its threads parameter) and bare alike (0: the backend's default; "
        "default: the params file's)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="the node's executor parameter (default: the params file's)",
    )
    parser.add_argument(
        "--clock-hz",
        type=float,
        default=40.0,
        help="/clock rate of the playback [Hz] (default 40, as `ros2 bag play --clock`)",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds for the node to come up")


# ---- pieces without rclpy -------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """User + system CPU time [s] of process ``pid`` (all its threads), from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame_latencies(sent: dict[int, float], received: dict[int, float]) -> tuple[np.ndarray, list[int]]:
    """End-to-end latencies [ms] of frames (stamp ns -> publish time, -> receive time [s]) in stamp order,
    and the stamps that got no answer."""
    answered = sorted(set(sent) & set(received))
    lat = np.array([(received[s] - sent[s]) * 1e3 for s in answered])
    return lat, sorted(set(sent) - set(received))


def jitter_ms(arrivals: list[float]) -> float:
    """Std of inter-arrival times [ms] (0 with fewer than three arrivals)."""
    if len(arrivals) < 3:
        return 0.0
    return float(np.std(np.diff(np.sort(arrivals))) * 1e3)


def bag_frames(reader, rig, history: int, dt: float, max_frames: int) -> tuple[list, float]:
    """``(observations, frame rate [Hz])`` of the bag's first ``max_frames`` frames: each camera stamp
    with all rig images and an odometry message at that stamp, decoded as the node decodes them (images
    at the size of the camera's camera_info in the bag, fitted to the rig's; ego history resampled from
    the bag's past odometry, as the node's planning loop does)."""
    from wamdiff_ros.data import ros_types as rt
    from wamdiff_ros.data.images import fit_to_camera
    from wamdiff_ros.geometry import relative, resample
    from wamdiff_ros.stamps import NS_PER_S, time_ns
    from wamdiff_ros.types import Observation

    topics = image_topics(reader.topics, rig)
    store = rt.typestore()
    infos = {rig.camera(c).camera_info_on(): c for c in topics}
    views = {c.name: (c.width, c.height, c.focal) for c in rig.cameras}
    images: dict[int, dict] = {}
    odom: dict[int, object] = {}
    for msg in reader.messages([*topics.values(), "/ego/odom", *(t for t in infos if t in reader.topics)]):
        data = store.deserialize_cdr(msg.data, msg.msgtype)
        stamp = time_ns(data.header.stamp)
        if msg.topic == "/ego/odom":
            odom[stamp] = rt.ego_from_odometry(data)
        elif msg.topic in infos:
            views[infos[msg.topic]] = (int(data.width), int(data.height), float(data.k[0]))
        else:
            cam = next(c for c, t in topics.items() if t == msg.topic)
            images.setdefault(stamp, {})[cam] = data
    stamps = [s for s in sorted(images) if len(images[s]) == len(rig.cameras) and s in odom]
    if len(stamps) < 2:
        raise ValueError(f"{reader.path}: fewer than 2 frames with every rig camera and /ego/odom")
    rate = NS_PER_S / float(np.median(np.diff(stamps)))
    egos = [odom[s] for s in sorted(odom)]
    out = []
    for s in stamps[:max_frames]:
        ego = odom[s]
        past = [e for e in egos if e.stamp_ns <= ego.stamp_ns]
        hist = np.zeros((history, 3))
        if history and len(past) > 1:
            t = np.array([e.stamp_ns - ego.stamp_ns for e in past]) / NS_PER_S
            poses = np.stack([e.pose for e in past])
            hist = relative(ego.pose, resample(poses, t, -dt * np.arange(history, 0, -1)))
        obs_images = {
            c.name: fit_to_camera(rt.decode_image_msg(images[s][c.name], views[c.name][:2]), c, views[c.name][2])
            for c in rig.cameras
        }
        out.append(Observation(images=obs_images, ego=ego, stamp_ns=s, ego_history=hist))
    return out, rate


def reception_timestamps() -> bool:
    """Whether rclpy hands two-argument subscription callbacks a MessageInfo with the middleware's
    reception timestamp (Iron and later; not Humble)."""
    from rclpy.subscription import Subscription

    kinds = getattr(Subscription, "CallbackType", None)
    return kinds is not None and hasattr(kinds, "WithMessageInfo")


def image_topics(topics: dict[str, str], rig) -> dict[str, str]:
    """Camera -> image topic of the bag (compressed preferred, on the rig camera's topics); ValueError
    naming a missing camera, the topics looked for and the topics the bag has."""
    out = {}
    for cam in rig.cameras:
        looked = [cam.images_on(True), cam.images_on(False)]
        found = next((t for t in looked if t in topics), None)
        if found is None:
            raise ValueError(
                f"bag: no image topic for rig camera {cam.name!r}: looked for {', '.join(looked)}; the bag has "
                f"{', '.join(sorted(topics))} (rename topics with --remap FROM:=TO)"
            )
        out[cam.name] = found
    return out


def bare_times(planner, observations: list, budget_ms: float, rate_hz: float | None = None) -> np.ndarray:
    """Wall times [ms] of ``planner.plan`` on each observation (after planning the first one once):
    back to back, or started every ``1 / rate_hz`` s as frames reach a node (the process idles between)."""
    planner.plan(observations[0], budget_ms)
    out = np.empty(len(observations))
    for i, obs in enumerate(observations):
        t0 = time.perf_counter()
        planner.plan(obs, budget_ms)
        out[i] = (time.perf_counter() - t0) * 1e3
        if rate_hz:
            time.sleep(max(0.0, 1.0 / rate_hz - (time.perf_counter() - t0)))
    return out


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> int:
    """SIGINT, then SIGTERM, then SIGKILL; returns the exit code."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


# ---- the run --------------------------------------------------------------------------------------------


class _Probe:
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


def run(args: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    """Run the benchmark; returns ``(rows per rate, meta)``."""
    import rclpy

    from wamdiff_ros.config import load_yaml, ros_parameters, schema_defaults
    from wamdiff_ros.data.raw_bag import RawBagReader
    from wamdiff_ros.graphs import executable_command
    from wamdiff_ros.paths import config_path, resolve
    from wamdiff_ros.planners.base import load_planner
    from wamdiff_ros.ros.params import load_schema, schema_path

    if args.iterations < 1 or args.frames < 2 or args.warmup_frames < 0 or any(r <= 0 for r in args.rates):
        raise ValueError("--iterations >= 1, --frames >= 2, --warmup-frames >= 0 and --rates > 0 expected")
    if not args.clock_hz > 0:
        raise ValueError(f"--clock-hz: expected > 0, got {args.clock_hz}")
    params = args.params_file or str(config_path("planner.param.yaml"))
    # What the node will run with: the params file over the schema's defaults.
    node_params = {**schema_defaults(load_schema(schema_path("planner"))), **ros_parameters(load_yaml(params), params)}
    backend = args.backend or node_params["backend"]
    threads = int(node_params["threads"] if args.threads is None else args.threads)
    if threads < 0:
        raise ValueError(f"--threads: expected >= 0, got {threads}")
    executor = args.executor or node_params["executor"]
    model = resolve(args.model, "models")
    planner = load_planner(model, backend=backend, threads=threads, spinning=False)  # as planner_node does
    planner.set_mode(args.mode)
    spec = planner.spec
    remaps = parse_remaps(args.remap)
    with RawBagReader(args.bag, remaps) as reader:
        cams = image_topics(reader.topics, planner.rig)
        observations, bag_hz = bag_frames(reader, planner.rig, planner.history, spec.dt, args.frames)
        bag_topics = dict(reader.topics)
    compressed = all(t.endswith("/compressed") for t in cams.values())
    if not compressed and any(t.endswith("/compressed") for t in cams.values()):
        raise ValueError(f"bag: mixed compressed and raw image topics {sorted(cams.values())}")
    extra = [planner.rig.camera(c).camera_info_on() for c in cams] + ["/ego/odom", "/ego/command", "/ego/instruction"]
    topics = list(cams.values()) + [t for t in extra if t in bag_topics]
    if "/ego/odom" not in topics:
        raise ValueError("bag: no /ego/odom")
    sync = set(cams.values()) | {"/ego/odom"}

    log(f"bare planner: {len(observations)} frames ({planner.family})")
    bare_before = bare_times(planner, observations, args.budget_ms)

    cmd = [*executable_command("planner_node"), "--ros-args", "-r", "__node:=planner_node", "--params-file", params]
    for key, value in (
        ("model_path", str(model)),
        ("rig_path", args.rig),
        ("use_sim_time", "true"),
        ("image_format", "compressed" if compressed else "raw"),
        ("budget_ms", repr(float(args.budget_ms))),
        ("reasoning_mode", args.mode),
        ("backend", backend),
        ("threads", str(threads)),
        ("executor", executor),
    ):
        cmd += ["-p", f"{key}:={value}"]
    fd, log_name = tempfile.mkstemp(prefix="wamdiff_bench_node_", suffix=".log")
    node_log = os.fdopen(fd, "w+")
    proc = subprocess.Popen(cmd, stdout=node_log, stderr=subprocess.STDOUT, start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = None
    rows, iterations, idle_cpu = [], [], float("nan")
    try:
        bag_name = {new: old for old, new in remaps.items()}  # the player takes the bag's own names
        sync = {bag_name.get(t, t) for t in sync}
        probe = _Probe(context, args.bag, [bag_name.get(t, t) for t in topics], sync, args.clock_hz, remaps)
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
        code = stop_process(proc)
        node_log.close()
        if code == 0:
            os.unlink(log_name)
    bare_after = bare_times(planner, observations, args.budget_ms)
    bare = np.concatenate([bare_before, bare_after])
    for row in rows:
        row["bare_mean_ms"] = float(bare.mean())
        row["ratio"] = row["e2e_mean_ms"] / float(bare.mean())
        row["ratio_p50"] = row["e2e_p50_ms"] / float(np.percentile(bare, 50))
        paced = bare_times(planner, observations[:PACED_FRAMES], args.budget_ms, row["rate_hz"])
        row["bare_paced_mean_ms"] = float(paced.mean())
    meta = {
        "bag": str(args.bag),
        "model": str(model),
        "family": planner.family,
        "reasoning_mode": args.mode,
        "backend": backend,
        "threads": threads or "default",
        "executor": executor,
        "bag_frame_hz": bag_hz,
        "clock_hz": args.clock_hz,
        "frames_per_pass": len(observations),
        "iterations": args.iterations,
        "warmup_frames": args.warmup_frames,
        "bare_ms": {
            "before_mean": float(bare_before.mean()),
            "after_mean": float(bare_after.mean()),
            "p50": float(np.percentile(bare, 50)),
            "p99": float(np.percentile(bare, 99)),
        },
        "latency_definition": "last camera/odometry publish of a frame -> its ~/trajectory received (same process)",
        "receive_time": "middleware reception timestamp" if reception_timestamps() else "probe callback",
        "node_command": cmd,
        "node_exit_code": code,
        "node_log": None if code == 0 else log_name,
        "node_idle_cpu_pct": idle_cpu,
        "load_average": os.getloadavg(),
        "per_iteration": iterations,
    }
    return rows, meta


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.benchmarking import report

    try:
        rows, meta = run(args, log=lambda s: print(s, file=sys.stderr))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"wamdiff bench node: {e}", file=sys.stderr)
        return 2
    report(
        "node",
        rows,
        args.json,
        meta=meta,
        targets={"ratio": f"node end-to-end mean / bare planner mean <= {RATIO_TARGET}"},
        columns=TABLE_COLUMNS,
    )
    if meta["node_log"]:
        print(f"wamdiff bench node: planner_node exited with {meta['node_exit_code']}; log: {meta['node_log']}")
    return 0
