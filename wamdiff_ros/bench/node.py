"""``wamdiff bench node --bag BAG --model DIR``: the unmodified planner_node under a played bag, in the
manner of ros2_benchmark.

The node runs as its own process, started as a graph would start it (``planner_node --ros-args
--params-file config/planner.param.yaml -p model_path:=… -p use_sim_time:=true``). This module holds the
command, the offline planner timing and the report; :mod:`wamdiff_ros.ros.node_harness` (rclpy) plays
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


def bag_frames(reader, rig, history: int, dt: float, max_frames: int, past_frame_s: float = 0.0) -> tuple[list, float]:
    """``(observations, frame rate [Hz])`` of the bag's first ``max_frames`` frames: each camera stamp
    with all rig images and an odometry message at that stamp, decoded as the node decodes them (images
    at the size of the camera's camera_info in the bag, fitted to the rig's; ego history resampled from
    the bag's past odometry, as the node's planning loop does; with ``past_frame_s`` the past camera
    set picked among the earlier frames as the loop picks it)."""
    from wamdiff_ros.data import ros_types as rt
    from wamdiff_ros.data.images import fit_to_camera
    from wamdiff_ros.geometry import relative, resample
    from wamdiff_ros.stamps import NS_PER_S, past_frame_index, time_ns
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
    for i, s in enumerate(stamps[:max_frames]):
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
        obs = Observation(images=obs_images, ego=ego, stamp_ns=s, ego_history=hist)
        if past_frame_s:
            j = past_frame_index(stamps[: i + 1], past_frame_s)
            obs.past_images = out[j].images if j < i else obs_images
        out.append(obs)
    return out, rate


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


def run(args: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    """Run the benchmark; returns ``(rows per rate, meta)``."""
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
        past_s = planner.past_frame_s
        observations, bag_hz = bag_frames(reader, planner.rig, planner.history, spec.dt, args.frames, past_s)
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
    try:
        from wamdiff_ros.ros.node_harness import measure_node

        measured = measure_node(proc, node_log, args, topics, sync, remaps, bag_hz, log)
    finally:
        code = stop_process(proc)
        node_log.close()
        if code == 0:
            os.unlink(log_name)
    rows = measured.rows
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
        "receive_time": measured.receive_time,
        "node_command": cmd,
        "node_exit_code": code,
        "node_log": None if code == 0 else log_name,
        "node_idle_cpu_pct": measured.idle_cpu_pct,
        "load_average": os.getloadavg(),
        "per_iteration": measured.iterations,
    }
    return rows, meta


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.bench.report import report

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
