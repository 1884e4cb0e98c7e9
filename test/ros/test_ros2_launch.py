"""Every launch file under the real ROS 2 launch service (`ros2 launch`) from a colcon install, and the
`ros2` verbs users reach for on the running planner: the graph comes up, plans, and stops cleanly on
Ctrl-C (SIGINT to the process group, so each node gets one from the group and one forwarded by launch).

Needs the upstream ros2cli / ros2launch / launch_ros (make setup installs them from ../shared/ros2-cli;
elsewhere a sourced ROS 2 has them); skipped without them. Every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node

from wamdiff_ros.data.bag import BagWriter
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from wamdiff_ros.paths import resolve
from wamdiff_ros.stamps import time_ns

from .conftest import RIG, Feeder, cv_checkpoint, wait_until

ROS2 = shutil.which("ros2", path=str(Path(sys.executable).parent)) or shutil.which("ros2")
NEEDED = ("launch", "launch_ros", "ros2launch", "ros2param", "ros2lifecycle", "ros2topic")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.ros,
    pytest.mark.slow,
    pytest.mark.skipif(
        ROS2 is None or bool(MISSING),
        reason=f"the ROS 2 command line and launch are not installed ({'ros2' if ROS2 is None else MISSING}): "
        "make setup installs them from ../shared/ros2-cli, or source a ROS 2",
    ),
]
NO_DAEMON = ["--no-daemon", "--spin-time", "3"]
"""Graph discovery without the daemon: its default 0.5 s is too short on a loaded machine."""
SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)
"""Exec with SIGINT at its default action: a process started from a background job inherits it ignored,
and launch then ignores Ctrl-C."""


class Ros2:
    """Runs `ros2` from a colcon install: AMENT_PREFIX_PATH holds the install prefix and the venv (launch's
    grammar, message packages), PYTHONPATH the installed package first (not the checkout)."""

    def __init__(self, prefix: Path, tmp: Path):
        site = next((prefix / "lib").glob("python3*/site-packages"))
        self.prefix = prefix
        self.env = {
            **os.environ,
            "PATH": f"{Path(ROS2).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AMENT_PREFIX_PATH": f"{prefix}{os.pathsep}{sys.prefix}",
            "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "ROS_LOG_DIR": str(tmp / "ros_log"),
            "PYTHONUNBUFFERED": "1",
        }
        self.tmp = tmp
        self.launches: list[Launch] = []

    def __call__(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """One `ros2` command to its end; its output (stdout and stderr) in ``.stdout``."""
        cmd = [sys.executable, "-c", SIGINT_DEFAULT, ROS2, *args]
        return subprocess.run(
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
        )

    @contextlib.contextmanager
    def daemon(self):
        """The ros2 daemon of this test's domain, running for the block and stopped after it: the verbs
        then read the graph it has been watching instead of each spinning to discover it."""
        started = self("daemon", "start")
        assert started.returncode == 0, started.stdout
        try:
            yield
        finally:
            self("daemon", "stop")
            assert "not running" in self("daemon", "status").stdout

    def start(self, *args: str, name: str = "ros2") -> Launch:
        """`ros2 ARGS` in the background."""
        return self.start_executable(ROS2, *args, name=name)

    def start_executable(self, path: str, *args: str, name: str) -> Launch:
        launch = Launch(self, [path, *args], self.tmp / f"{name}.log")
        self.launches.append(launch)
        return launch

    def launch(self, launch_file: str, *arguments: str) -> Launch:
        return self.start("launch", "wamdiff_ros", launch_file, *arguments, name=launch_file)

    def close(self) -> None:
        for launch in self.launches:
            launch.kill()


class Launch:
    """A command (`ros2 …` or a node executable) in its own session, so a Ctrl-C can be sent to its process
    group; stdin is not a tty, as under a script or a service manager."""

    def __init__(self, ros2: Ros2, argv: list[str], log: Path):
        self.log = log
        self._file = open(log, "w")  # noqa: SIM115 (closed in kill/wait)
        cmd = [sys.executable, "-c", SIGINT_DEFAULT, *argv]
        self.proc = subprocess.Popen(
            cmd,
            env=ros2.env,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.proc.pid

    def output(self) -> str:
        self._file.flush()
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float) -> None:
        def seen():
            if self.proc.poll() is not None and text not in self.output():
                raise AssertionError(f"ros2 ended ({self.proc.returncode}) before printing {text!r}:\n{self.output()}")
            return text in self.output()

        wait_until(seen, timeout, interval=0.1, what=f"{text!r} in {self.log.name}")

    def ctrl_c(self) -> None:
        """SIGINT to the whole process group, as a terminal's Ctrl-C."""
        os.killpg(self.pgid, signal.SIGINT)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ros2 did not end within {timeout} s:\n{self.output()}") from None
        finally:
            self._file.flush()

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def assert_ended_cleanly(self, nodes: list[str]) -> str:
        """Exit 0, every node finished cleanly, no traceback, and no process of the group left."""
        out = self.output()
        assert self.proc.returncode == 0, out
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
        for node in nodes:
            assert (
                f"[INFO] [{node}-" in out and "process has finished cleanly" in out.split(f"[INFO] [{node}-", 1)[1]
            ), (
                node,
                out,
            )
        wait_until(lambda: not self.group_alive(), 10.0, what="no process of the launch left")
        return out

    def kill(self) -> None:
        """Teardown: Ctrl-C, then SIGKILL to whatever of the group is left."""
        if self.group_alive():
            with contextlib.suppress(ProcessLookupError):
                self.ctrl_c()
            deadline = time.monotonic() + 15.0
            while self.group_alive() and time.monotonic() < deadline:
                self.proc.poll()
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._file.close()


@pytest.fixture
def ros2(colcon_install, tmp_path):
    r = Ros2(colcon_install, tmp_path)
    try:
        yield r
    finally:
        r.close()


class Trajectories(Node):
    def __init__(self, context, topic: str):
        super().__init__("trajectories", context=context)
        self.paths: list[PathMsg] = []
        self.create_subscription(PathMsg, topic, self.paths.append, 10)


def _answered(feeder: Feeder, out: Trajectories, timeout: float = 20.0) -> None:
    """Send frames until one is answered with its stamp (the first ones may go out before every
    subscription has matched: the feeder's side matches first)."""
    sent: set[int] = set()

    def answered():
        sent.add(feeder.send())
        return any(time_ns(p.header.stamp) in sent for p in list(out.paths))

    wait_until(answered, timeout, interval=0.3, what="a trajectory answering a frame")


def _feed(feeder: Feeder, stop: threading.Event, period: float = 0.1) -> threading.Thread:
    def run():
        while not stop.wait(period):
            feeder.send()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_planner_launch_plans_answers_the_ros2_verbs_and_stops_cleanly_on_ctrl_c(ros2, graph, tmp_path):
    model = cv_checkpoint(tmp_path / "cv")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    shipped = resolve("wamdiff_small", "models")
    shutil.copy(shipped / CONFIG_FILE, truncated / CONFIG_FILE)
    (truncated / WEIGHTS_FILE).write_bytes((shipped / WEIGHTS_FILE).read_bytes()[:100_000])
    with ros2.daemon():
        launch = ros2.launch("planner.launch.py", f"model_path:={model}", "trajectory_topic:=/test/trajectory")
        feeder = graph.add(Feeder(graph.context))
        out = graph.add(Trajectories(graph.context, "/test/trajectory"))
        feeder.wait_connected(timeout=45.0)
        _answered(feeder, out)
        wait_until(lambda: "/planner_node" in ros2("node", "list").stdout, 20.0, what="the daemon to see the node")

        got = ros2("param", "get", "/planner_node", "model_path")
        assert got.returncode == 0 and f"String value is: {model}" in got.stdout, got.stdout
        got = ros2("param", "set", "/planner_node", "plan_rate_hz", "20.0")
        assert "Set parameter successful" in got.stdout, got.stdout
        got = ros2("param", "set", "/planner_node", "model_path", str(truncated))
        assert "Setting parameter failed: model_path refused" in got.stdout and WEIGHTS_FILE in got.stdout, got.stdout

        stop = threading.Event()
        feeding = _feed(feeder, stop)
        try:
            hz = ros2.start("topic", "hz", "/test/trajectory", "--window", "10", name="hz")
            hz.wait_for("average rate:", 30.0)
            hz.ctrl_c()
            assert hz.wait(10.0) == 0 and not hz.group_alive(), hz.output()
            rates = [float(line.split(":")[1]) for line in hz.output().splitlines() if "average rate:" in line]
            assert 5.0 < rates[-1] < 15.0, hz.output()  # the 10 Hz input answered frame by frame
            echo = ros2("topic", "echo", "--once", "/test/trajectory")
            assert echo.returncode == 0 and "frame_id: map" in echo.stdout and "poses:" in echo.stdout, echo.stdout
        finally:
            stop.set()
            feeding.join()

        assert "active [3]" in ros2("lifecycle", "get", "/planner_node").stdout
        got = ros2("lifecycle", "set", "/planner_node", "deactivate")
        assert "Transitioning successful" in got.stdout, got.stdout
        wait_until(lambda: feeder.odom.get_subscription_count() == 0, 10.0, what="inputs released")
        got = ros2("lifecycle", "set", "/planner_node", "activate")
        assert "Transitioning successful" in got.stdout, got.stdout
        feeder.wait_connected(timeout=20.0)
        _answered(feeder, out)

        launch.ctrl_c()
        launch.wait(30.0)
        launch.assert_ended_cleanly(["planner_node"])


def test_ros2_run_starts_the_planner_without_the_daemon_and_it_survives_two_sigints(ros2, tmp_path):
    model = cv_checkpoint(tmp_path / "cv")
    run = ros2.start("run", "wamdiff_ros", "planner_node", "--ros-args", "-p", f"model_path:={model}", name="run")
    run.wait_for("spinning the", 45.0)
    assert "active [3]" in ros2("lifecycle", "get", "/planner_node", *NO_DAEMON).stdout
    os.kill(_child(run.pgid), signal.SIGINT)
    time.sleep(0.05)
    run.ctrl_c()  # the second one, to the group, lands in the node's cleanup
    assert run.wait(30.0) == 0, run.output()
    assert "Traceback" not in run.output(), run.output()
    wait_until(lambda: not run.group_alive(), 10.0, what="no process of ros2 run left")


def _child(pgid: int) -> int:
    """The one process of group ``pgid`` besides its leader (the node under `ros2 run`)."""
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split() if int(p) != pgid]
    assert len(pids) == 1, out
    return pids[0]


def test_sim_closed_loop_launch_runs_an_episode_and_ends_when_the_bridge_is_done(ros2, tmp_path):
    model = cv_checkpoint(tmp_path / "cv")
    metrics = tmp_path / "metrics.json"
    args = [f"model_path:={model}", "episodes:=1", "scenarios:=[highway_sparse]", "max_duration_s:=1.0"]
    launch = ros2.launch("sim_closed_loop.launch.py", *args, f"metrics_path:={metrics}")
    launch.wait(90.0)
    launch.assert_ended_cleanly(["planner_node", "sim_bridge_node"])
    record = json.loads(metrics.read_text())["episodes"][0]
    assert record["ticks"] == 11 and record["trajectory_timeouts"] == 0  # a plan answered every tick


def test_sim_closed_loop_launch_stops_cleanly_on_ctrl_c_mid_episode(ros2, tmp_path):
    model = cv_checkpoint(tmp_path / "cv")
    launch = ros2.launch("sim_closed_loop.launch.py", f"model_path:={model}", "episodes:=1")
    launch.wait_for(") starts at sim time", 60.0)  # the bridge is driving an episode
    launch.ctrl_c()
    launch.wait(30.0)
    launch.assert_ended_cleanly(["planner_node", "sim_bridge_node"])


@pytest.fixture(scope="module")
def drive_bag(tmp_path_factory):
    """A 2 s drive at 10 Hz with the default rig (JPEG) and ground truth."""
    path = tmp_path_factory.mktemp("launch_bags") / "drive.mcap"
    with BagWriter(path, RIG) as w:
        for k, frame in enumerate(synthetic_frames("a", 20)):
            w.write_tick(frame, synthetic_images(RIG, k), synthetic_lanes() if k == 0 else None)
    return w.bag_dir


def test_replay_launch_plans_on_the_bag_and_ends_when_it_is_played(ros2, graph, tmp_path, drive_bag):
    model = cv_checkpoint(tmp_path / "cv")
    out = graph.add(Trajectories(graph.context, "/planner/trajectory"))
    launch = ros2.launch("replay.launch.py", f"bag:={drive_bag}", f"model_path:={model}", "delay:=3.0")
    launch.wait(60.0)
    launch.assert_ended_cleanly(["planner_node", "bag_player"])
    assert len(out.paths) >= 10, f"{len(out.paths)} trajectories for 20 frames"


def test_replay_launch_stops_cleanly_on_ctrl_c_while_playing(ros2, graph, tmp_path, drive_bag):
    model = cv_checkpoint(tmp_path / "cv")
    out = graph.add(Trajectories(graph.context, "/planner/trajectory"))
    launch = ros2.launch("replay.launch.py", f"bag:={drive_bag}", f"model_path:={model}", "loop:=true")
    wait_until(lambda: len(out.paths) >= 3, 45.0, what="trajectories from the replayed bag")
    launch.ctrl_c()
    launch.wait(30.0)
    launch.assert_ended_cleanly(["planner_node", "bag_player"])


def _tiny_model_and_bag(tmp_path: Path) -> tuple[Path, Path]:
    """An untrained tiny WAM-Diff checkpoint and a bag of its rig (test/unit/_training_helpers.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    import torch
    from _training_helpers import tiny_cfg, write_tiny_bag

    from wamdiff_ros.planners.wamdiff.net import WamDiffNet

    torch.manual_seed(0)
    return WamDiffNet(tiny_cfg()).save(tmp_path / "tiny_model"), write_tiny_bag(tmp_path / "tiny.mcap")


def test_rl_finetune_launch_fine_tunes_and_ends_when_done(ros2, tmp_path):
    import yaml

    model, bag = _tiny_model_and_bag(tmp_path)
    settings = {"group_size": 4, "scenes_per_step": 2, "every": 8, "epochs": 50, "threads": 1, "val_frames": 2}
    settings |= {"val_every_steps": 2, "save_every_steps": 1}
    (tmp_path / "rl.yaml").write_text(yaml.safe_dump(settings))
    args = [f"model_path:={model}", f"data:=[{bag}]", f"val_data:=[{bag}]", f"out_dir:={tmp_path / 'run'}"]
    args += ["planner_node:=''", f"settings_path:={tmp_path / 'rl.yaml'}", "max_steps:=2"]
    launch = ros2.launch("rl_finetune.launch.py", *args)
    launch.wait(120.0)
    launch.assert_ended_cleanly(["rl_finetune_node"])
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 2


def test_rl_finetune_launch_stops_on_ctrl_c_with_a_resume_point(ros2, tmp_path):
    """rl_finetune_node's own exit code on Ctrl-C is 130 (stopped, resumable: see its main), which launch
    logs as a process that died; launch itself exits 0."""
    model, bag = _tiny_model_and_bag(tmp_path)
    args = [f"model_path:={model}", f"data:=[{bag}]", "val_data:=['']", f"out_dir:={tmp_path / 'run'}"]
    launch = ros2.launch("rl_finetune.launch.py", *args, "planner_node:=''", "max_steps:=1000")
    launch.wait_for("GSPO on", 60.0)
    launch.ctrl_c()
    assert launch.wait(60.0) == 0, launch.output()
    out = launch.output()
    assert f"stopped; resume point {tmp_path / 'run' / 'last'}" in out and "exit code 130" in out, out
    assert "Traceback" not in out, out
    wait_until(lambda: not launch.group_alive(), 10.0, what="no process of the launch left")


def test_carla_launch_comes_up_as_far_as_it_can_without_a_server(ros2, tmp_path):
    """Without a CARLA server the bridge fails at connect, with the reason; being required, it ends the
    graph, and the planner (up by then) stops cleanly. Driving needs a server (test/unit/fake_carla.py
    covers the bridge's logic)."""
    model = cv_checkpoint(tmp_path / "cv")
    launch = ros2.launch("carla_closed_loop.launch.py", f"model_path:={model}", "port:=1")
    launch.wait(90.0)
    out = launch.output()
    assert "[planner_node]: configured: constant_velocity" in out, out
    assert "carla_bridge_node-2]: process has died" in out and "carla" in out.lower(), out
    assert "Traceback" not in out, out
    assert "[INFO] [planner_node-1]: process has finished cleanly" in out, out
    wait_until(lambda: not launch.group_alive(), 10.0, what="no process of the launch left")


def _node_args(tmp_path: Path, drive_bag: Path, executable: str) -> tuple[list[str], int]:
    """``--ros-args`` that bring ``executable`` up without other nodes, and its exit code on Ctrl-C."""
    if executable == "planner_node":
        return ["-p", f"model_path:={cv_checkpoint(tmp_path / 'cv')}"], 0
    if executable == "sim_bridge_node":
        return ["-p", "scenarios:=[highway_sparse]", "-p", "episodes:=1"], 0  # waits for a planner
    if executable == "carla_bridge_node":
        return ["-p", "port:=1", "-p", "timeout_s:=2.0"], 0  # tries to connect
    if executable == "bag_player":
        return ["-p", f"bag:={drive_bag}", "-p", "loop:=true"], 0
    model, bag = _tiny_model_and_bag(tmp_path)
    params = {"model_path": model, "data": f"[{bag}]", "val_data": "['']", "out_dir": tmp_path / "run"}
    params |= {"planner_node": "''", "max_steps": 1000}
    return [a for k, v in params.items() for a in ("-p", f"{k}:={v}")], 130  # rl_finetune_node: stopped, resumable


@pytest.mark.parametrize(
    "executable", ["planner_node", "sim_bridge_node", "carla_bridge_node", "bag_player", "rl_finetune_node"]
)
def test_node_executable_ends_cleanly_on_a_second_sigint_during_its_shutdown(
    ros2, graph, tmp_path, drive_bag, executable
):
    """As under `ros2 launch` without a terminal: one SIGINT from the process group, one forwarded."""
    args, code = _node_args(tmp_path, drive_bag, executable)
    path = str(ros2.prefix / "lib" / "wamdiff_ros" / executable)
    node = ros2.start_executable(path, "--ros-args", *args, name=executable)
    probe = graph.add(Node("probe", context=graph.context))
    wait_until(lambda: executable in probe.get_node_names(), 45.0, what=f"{executable} in the graph")
    time.sleep(1.0)  # past its start-up, into its main loop
    node.ctrl_c()
    time.sleep(0.1)
    node.ctrl_c()
    assert node.wait(30.0) == code, node.output()
    assert "Traceback" not in node.output() and "KeyboardInterrupt" not in node.output(), node.output()
    wait_until(lambda: not node.group_alive(), 10.0, what=f"no {executable} process left")
