"""`wamdiff demo` end to end on a constant-velocity checkpoint: real node processes and topics, the
metrics JSON, a GIF with every tick, and no process left behind (after success and after Ctrl-C)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import load_rig

pytestmark = [pytest.mark.slow, pytest.mark.ros]
WAMDIFF = [sys.executable, "-m", "wamdiff_ros.cli", "demo"]


def _processes_mentioning(text: str) -> dict[int, str]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "zombie" not in state:
            found[int(proc.name)] = cmdline
    return found


def _kill(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def model(tmp_path):
    return ConstantVelocityPlanner(load_rig("rigs/default.yaml")).save(tmp_path / "cv")


def test_one_short_episode(tmp_path, model):
    out = tmp_path / "out"
    cmd = [*WAMDIFF, "--model", str(model), "--episodes", "1", "--scenarios", "highway_sparse"]
    cmd += ["--max-duration", "3", "--out", str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "wamdiff demo: summary" in done.stdout and "at-fault collisions" in done.stdout
        metrics = json.loads((out / "metrics.json").read_text())
        s = metrics["summary"]
        assert s["episodes"] == 1 and s["at_fault_collisions"] in (0, 1)
        assert 0.0 < s["route_completion"] < 1.0
        assert 0.0 < s["latency_ms_p50"] <= s["latency_ms_p99"]
        assert s["planner_cycles"] >= 25 and s["plans"] >= 25  # counts from a /diagnostics sent after the episode
        assert (s["fast_rate"], s["slow_rate"]) == (1.0, 0.0)  # constant velocity only plans fast
        # Bridge timeouts (1 s without a plan) were seen 0-4 times in 31 ticks while the node's executor
        # starved its planning thread; since that fix none in 24 demo episodes. A broken loop fails above.
        assert s["trajectory_timeouts"] <= 6
        (episode,) = metrics["episodes"]
        assert episode["ticks"] == 31 and episode["reason"] == "timeout"  # cut at 3 s of sim time
        assert metrics["gif"]["frames"] == episode["ticks"]  # recorded from the first tick on
        import imageio.v3 as iio

        frames = iio.imread(out / "episode.gif", index=None)
        assert frames.shape[0] == episode["ticks"] > 1
        assert frames.shape[1:3] == (448, 768)
        assert (out / "demo" / "demo.mcap").is_file() and (out / "graph.log").is_file()
        time.sleep(0.5)
        assert _processes_mentioning(str(tmp_path)) == {}
    finally:
        _kill(_processes_mentioning(str(tmp_path)))


def test_ctrl_c_stops_every_process(tmp_path, model):
    out = tmp_path / "out"
    cmd = [*WAMDIFF, "--model", str(model), "--episodes", "3", "--scenarios", "highway_sparse"]
    cmd += ["--max-duration", "60", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any("sim_bridge_node" in c for c in _processes_mentioning(str(tmp_path)).values()):
            assert proc.poll() is None and time.monotonic() < deadline, "the bridge never started"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=40)
        assert proc.returncode == 130, stdout + stderr
        assert "interrupted; every node stopped" in stderr
        time.sleep(0.5)
        assert _processes_mentioning(str(tmp_path)) == {}
        assert not (out / "metrics.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill(_processes_mentioning(str(tmp_path)))
