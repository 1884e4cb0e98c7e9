"""Bag replay over real rclpy: play (order, spacing, /clock, remaps, skipped types), record (raw
subscriptions read back by AnyReader; Ctrl-C finishes the bag), and a tiny ``wamdiff bench node`` run."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from wamdiff_ros.data.bag import BagWriter
from wamdiff_ros.data.playback import PlaybackOptions
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.bag_player import BagPlayer
from wamdiff_ros.ros.bag_recorder import BagRecorder, record
from wamdiff_ros.stamps import NS_PER_S, time_ns

from .conftest import RIG, cv_checkpoint, wait_until

pytestmark = pytest.mark.ros
TICKS = 20


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """A 2 s drive at 10 Hz with the default rig (JPEG), ground truth included."""
    path = tmp_path_factory.mktemp("bags") / "drive.mcap"
    lanes = synthetic_lanes()
    with BagWriter(path, RIG) as w:
        for k, frame in enumerate(synthetic_frames("a", TICKS)):
            w.write_tick(frame, synthetic_images(RIG, k), lanes if k == 0 else None)
    return w.bag_dir


class Listener(Node):
    def __init__(self, context):
        super().__init__("listener", context=context)
        self.odom, self.commands, self.clock = [], [], []
        self.create_subscription(Odometry, "/ego/odom", lambda m: self.odom.append((time.monotonic(), m)), 100)
        self.create_subscription(String, "/replayed/command", lambda m: self.commands.append(m.data), 100)
        self.create_subscription(Clock, "/clock", lambda m: self.clock.append(time_ns(m.clock) / NS_PER_S), 100)


def test_play_keeps_order_and_spacing(graph, bag):
    listener = graph.add(Listener(graph.context))
    node = graph.add(Node("player", context=graph.context))
    options = PlaybackOptions(rate=2.0, clock=True, clock_hz=50.0, remaps={"/ego/command": "/replayed/command"})
    player = BagPlayer(node, bag, options)
    try:
        assert set(player.skipped) == {"/wamdiff/truth", "/wamdiff/map"}  # no ROS Python package for them
        assert player.topics["/ego/command"] == "/replayed/command" and "/clock" not in player.topics
        for topic in ("/ego/odom", "/ego/command"):
            wait_until(lambda t=topic: player.publisher(t).get_subscription_count() > 0, 10.0, what=f"{topic} match")
        stats = player.play()
        assert stats.messages == TICKS * (3 + 2 * len(RIG.cameras))  # odom, command, instruction; info + image
        wait_until(lambda: len(listener.odom) == TICKS and len(listener.commands) == TICKS, 5.0, what="all messages")
    finally:
        player.close()
    stamps = [time_ns(m.header.stamp) for _, m in listener.odom]
    assert set(np.diff(stamps)) == {NS_PER_S // 10}  # in recorded order
    arrivals = np.diff([t for t, _ in listener.odom])
    assert np.median(arrivals) == pytest.approx(0.05, abs=0.015)  # 0.1 s of bag at rate 2
    assert arrivals.sum() == pytest.approx(0.05 * (TICKS - 1), abs=0.1)
    assert listener.commands == ["straight"] * TICKS
    assert len(listener.clock) >= 10 and listener.clock[0] == pytest.approx(
        1.0, abs=0.02
    )  # bag time from its first tick
    assert np.all(np.diff(listener.clock) > 0) and listener.clock[-1] <= 1.0 + 0.1 * TICKS


def test_record_reads_back_with_anyreader(graph, tmp_path):
    talker = graph.add(Node("talker", context=graph.context))
    odom_pub = talker.create_publisher(Odometry, "/rec/odom", 10)
    text_pub = talker.create_publisher(String, "/rec/text", 10)
    recorder_node = Node("recorder", context=graph.context)  # spun by record() itself
    recorder = BagRecorder(recorder_node, ["/rec/odom", "/rec/text", "/rec/never"], tmp_path / "rec.mcap")
    stop = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("problem", record(recorder_node, recorder, stop, None, 5.0))
    )
    thread.start()
    try:
        wait_until(
            lambda: odom_pub.get_subscription_count() and text_pub.get_subscription_count(), 10.0, what="recorder"
        )
        from wamdiff_ros.types import EgoState

        for k in range(10):
            odom_pub.publish(conv.odometry(EgoState(pose=[k, 0.0, 0.0]), (50 + k) * NS_PER_S // 10, "map", "base_link"))
            text_pub.publish(String(data=f"hello {k}"))
            time.sleep(0.01)
        wait_until(lambda: recorder.counts.get("/rec/odom") == 10 and recorder.counts.get("/rec/text") == 10, 5.0)
    finally:
        stop.set()
        thread.join(timeout=10)
        path = recorder.close()
        recorder_node.destroy_node()
    assert result["problem"] is None and recorder.missing == ["/rec/never"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the temporary directory is gone
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        msgs = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert types == {"/rec/odom": "nav_msgs/msg/Odometry", "/rec/text": "std_msgs/msg/String"}
    assert [m.data for t, m in msgs if t == "/rec/text"] == [f"hello {k}" for k in range(10)]
    odoms = [m for t, m in msgs if t == "/rec/odom"]
    assert [m.pose.pose.position.x for m in odoms] == [float(k) for k in range(10)]
    assert odoms[3].header.stamp.sec == 5 and odoms[3].header.stamp.nanosec == 300_000_000


def _lines(proc) -> list[str]:
    """The process's output lines, collected by a thread as they come."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return lines


def test_play_and_record_processes_stop_cleanly_on_ctrl_c(bag, tmp_path):
    env = dict(os.environ)
    wamdiff = [sys.executable, "-m", "wamdiff_ros.cli"]
    out = tmp_path / "out.mcap"
    procs = []

    def start(args):
        procs.append(
            subprocess.Popen([*wamdiff, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
        return procs[-1], _lines(procs[-1])

    try:
        rec, rec_lines = start(["record", "--topics", "/ego/odom", "--out", str(out), "--wait", "30"])
        play, play_lines = start(["play", str(bag), "--loop", "--rate", "4", "--topics", "/ego/odom", "/ego/command"])
        wait_until(lambda: any("recording [" in line for line in rec_lines), 30.0, what="the recorder to subscribe")
        wait_until(lambda: any("playing" in line for line in play_lines), 30.0, what="the player to start")
        time.sleep(2.0)
        assert play.poll() is None and rec.poll() is None  # looping / recording until interrupted
        play.send_signal(signal.SIGINT)
        assert play.wait(timeout=15) == 0, "".join(play_lines)
        rec.send_signal(signal.SIGINT)
        assert rec.wait(timeout=15) == 0, "".join(rec_lines)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    time.sleep(0.2)
    assert any("stopped:" in line for line in play_lines), "".join(play_lines)
    with AnyReader([tmp_path / "out"]) as reader:
        n = sum(c.msgcount for c in reader.connections if c.topic == "/ego/odom")
    assert n > 0 and any(f"/ego/odom {n}" in line for line in rec_lines), "".join(rec_lines)


def test_bench_node_smoke(bag, tmp_path):
    from wamdiff_ros.bench.node import run

    model = cv_checkpoint(tmp_path / "cv")
    args = argparse.Namespace(
        bag=str(bag),
        model=str(model),
        rates=[10.0, 20.0],
        iterations=1,
        frames=8,
        warmup_frames=3,
        params_file=None,
        rig="rigs/default.yaml",
        budget_ms=80.0,
        mode="adaptive",
        backend=None,  # the params file's: ONNX Runtime (a checkpoint without a network ignores it), one thread
        threads=None,
        executor="events",  # the C++ executor end to end (where rclpy lacks it the node falls back, still planning)
        clock_hz=40.0,
        startup_timeout=60.0,
        remap=[],
        json=None,
    )
    rows, meta = run(args, log=lambda s: None)
    assert [r["rate_hz"] for r in rows] == [10.0, 20.0]
    for r in rows:
        keys = ("frames", "missed", "e2e_mean_ms", "e2e_p99_ms", "e2e_max_ms", "jitter_ms", "node_cpu_pct", "ratio")
        assert all(k in r for k in keys)
        assert r["frames"] == 8 and r["missed"] <= 1
        assert 0 < r["e2e_mean_ms"] <= r["e2e_max_ms"] < 1000 and r["node_cpu_pct"] > 0
        assert r["plans"] >= 7 and r["fallbacks"] <= 1  # one stale-input fallback seen under a loaded 2-core run
        assert r["ratio"] == pytest.approx(r["e2e_mean_ms"] / r["bare_mean_ms"])
        assert 0 < r["node_processing_p50_ms"] < r["e2e_max_ms"]  # the node's own cycle time, one part of e2e
        assert 0 < r["node_planner_mean_ms"] <= r["node_processing_mean_ms"]  # the plan call, one part of the cycle
        assert r["ratio_node_planner"] == pytest.approx(r["e2e_mean_ms"] / r["node_planner_mean_ms"])
        assert r["player_cpu_pct"] > 0
        assert 0 < r["bare_paced_mean_ms"] < 1000 and r["e2e_callback_mean_ms"] >= r["e2e_mean_ms"] - 1.0
    assert meta["node_exit_code"] == 0 and meta["node_log"] is None and meta["family"] == "constant_velocity"
    assert (meta["backend"], meta["threads"], meta["executor"]) == ("onnxruntime", 1, "events")
    assert meta["bag_frame_hz"] == pytest.approx(10.0) and len(meta["per_iteration"]) == 2
