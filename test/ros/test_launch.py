"""`wamdiff launch GRAPH`: the graph's nodes start as processes with --ros-args, remaps apply, Ctrl-C
stops everything cleanly, and a required node ending stops the graph."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cv_checkpoint, wait_until

pytestmark = pytest.mark.ros
WAMDIFF = [sys.executable, "-m", "wamdiff_ros.cli"]


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pids_of_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_ctrl_c_stops_the_graph_cleanly_and_remaps_apply(graph, tmp_path):
    from rclpy.node import Node

    model = cv_checkpoint(tmp_path / "cv")
    cmd = [*WAMDIFF, "launch", "planner", f"model_path:={model}", "trajectory_topic:=/test/trajectory"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    children = []
    try:
        probe = graph.add(Node("probe", context=graph.context))
        wait_until(lambda: probe.count_publishers("/test/trajectory") > 0, 30.0, what="remapped trajectory topic")
        assert probe.count_publishers("/planner_node/trajectory") == 0
        children = _pids_of_children(proc.pid)
        assert children, "the launcher started no node process"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopped on signal (planner_node 0)" in out
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        _stop(proc)
        for pid in children:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_closed_loop_graph_runs_an_episode_and_ends_when_the_bridge_is_done(tmp_path):
    model = cv_checkpoint(tmp_path / "cv")
    metrics = tmp_path / "metrics.json"
    cmd = [
        *WAMDIFF,
        "launch",
        "sim_closed_loop",
        f"model_path:={model}",
        "episodes:=1",
        "scenarios:=[highway_sparse]",
        "max_duration_s:=1.0",
        f"metrics_path:={metrics}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
        assert "sim_bridge_node exited with 0" in out
        record = json.loads(metrics.read_text())["episodes"][0]
        assert record["ticks"] == 11 and record["trajectory_timeouts"] == 0
    finally:
        _stop(proc)
