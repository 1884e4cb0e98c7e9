"""planner_node as a process, the way ros2 run / launch start it: console script, --params-file, sim time
from /clock, lifecycle services, and a clean exit on Ctrl-C, on each executor it can spin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lifecycle_msgs.srv import GetState
from rosgraph_msgs.msg import Clock

from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.executors import EXECUTORS, events_executor_class
from wamdiff_ros.stamps import NS_PER_S, time_ns

from .conftest import Collector, Feeder, cv_checkpoint, values, wait_until

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_console_script_with_params_file_and_sim_time(graph, tmp_path, executor):
    if executor == "events" and events_executor_class() is None:
        pytest.skip("this rclpy has no EventsExecutor (Jazzy or later)")
    exe = Path(sys.executable).parent / "planner_node"
    assert exe.exists(), "run: pip install --no-deps --no-build-isolation -e ."
    model = cv_checkpoint(tmp_path / "cv")
    cmd = [
        str(exe),
        "--ros-args",
        "--params-file",
        str(ROOT / "config" / "planner.param.yaml"),
        "-p",
        f"model_path:={model}",
        "-p",
        "use_sim_time:=true",
        "-p",
        "diagnostics_period_s:=0.2",
        "-p",
        f"executor:={executor}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        feeder = graph.add(Feeder(graph.context))
        collector = graph.add(Collector(graph.context))
        clock = feeder.create_publisher(Clock, "/clock", 10)
        feeder.wait_connected(timeout=30.0)
        wait_until(lambda: clock.get_subscription_count() > 0, 10.0, what="/clock subscription")
        ok = status = None
        for k in range(200):  # sim time: 100 s + k·0.1, far from the wall clock; timers run on it too
            t = (1000 + k) * 100_000_000
            clock.publish(Clock(clock=conv.to_time(t)))
            feeder.send(stamp=t, ego=feeder.moving(t))
            ok = ok or next((p for p in list(collector.paths) if time_ns(p.header.stamp) >= 100 * NS_PER_S), None)
            status = next((d for d in list(collector.diagnostics) if values(d).get("plans", "0") != "0"), None)
            if ok is not None and status is not None:
                break
            time.sleep(0.05)
        assert ok is not None, "no trajectory from the planner_node process"
        assert 100 * NS_PER_S <= time_ns(ok.header.stamp) < 120 * NS_PER_S and len(ok.poses) == 8
        assert status is not None, "no diagnostics (on the sim clock) from the planner_node process"
        assert values(status)["family"] == "constant_velocity"
        assert values(status)["fallbacks_stop"] == "0"  # sim-stamped inputs were fresh on the sim clock
        get_state = feeder.create_client(GetState, "/planner_node/get_state")
        assert get_state.wait_for_service(timeout_sec=30.0), "no lifecycle get_state service"
        future = get_state.call_async(GetState.Request())
        wait_until(future.done, 10.0, what="get_state response")
        assert future.result().current_state.label == "active"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert f"spinning the {executor} executor" in out
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
