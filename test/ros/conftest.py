"""Helpers for real rclpy graphs in one process: an isolated context, a spinning executor, a feeder
node that plays camera/odometry frames and a collector that waits (with timeouts) for what comes out."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry, Path  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from wamdiff_ros.geometry import compose  # noqa: E402
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner  # noqa: E402
from wamdiff_ros.rig import load_rig  # noqa: E402
from wamdiff_ros.ros import conversions as conv  # noqa: E402
from wamdiff_ros.stamps import time_ns  # noqa: E402
from wamdiff_ros.types import EgoState, TrajectorySpec  # noqa: E402

RIG = load_rig("rigs/default.yaml")


@pytest.fixture
def ros_context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


class Graph:
    """Nodes spun by a MultiThreadedExecutor in a background thread; ``close`` stops and destroys them."""

    def __init__(self, context):
        self.context = context
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.nodes: list = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self.context.ok():
                    raise

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self):
        for node in self.nodes:
            if hasattr(node, "_release_io"):
                node._release_io()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        for node in self.nodes:
            node.destroy_node()


@pytest.fixture
def graph(ros_context):
    g = Graph(ros_context)
    try:
        yield g
    finally:
        g.close()


def wait_until(predicate, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Feeder(Node):
    """Publishes the rig's images (JPEG or raw), camera_info, odometry and command like a vehicle would."""

    def __init__(self, context, raw: bool = False, prefix: str = "/cameras", rig=None):
        super().__init__("feeder", context=context)
        self.raw = raw
        self.images = {}
        self.infos = {}
        for cam in (rig or RIG).cameras:
            topic = cam.images_on(not raw, prefix)
            self.images[cam.name] = self.create_publisher(Image if raw else CompressedImage, topic, 10)
            self.infos[cam.name] = self.create_publisher(CameraInfo, cam.camera_info_on(prefix), 10)
        self.odom = self.create_publisher(Odometry, "/ego/odom", 10)
        self.command = self.create_publisher(String, "/ego/command", 10)
        self.t_start = self.now()
        self.frame = {c.name: np.full((c.height, c.width, 3), 90, np.uint8) for c in RIG.cameras}

    def moving(self, t: int, pose0=(10.0, 5.0, 0.3), speed: float = 8.0) -> EgoState:
        """A vehicle driving straight at ``speed`` from ``pose0`` (at the feeder's start), at ``t`` [ns] —
        consistent odometry, so propagating it in time or holding a plan gives the same poses as re-planning."""
        pose = compose(np.asarray(pose0, float), [speed * (t - self.t_start) * 1e-9, 0.0, 0.0])
        return EgoState(pose=pose, velocity=[speed, 0.0], stamp_ns=t)

    def now(self) -> int:
        """The feeder's clock [ns]."""
        return self.get_clock().now().nanoseconds

    def wait_connected(self, timeout=10.0):
        pubs = [*self.images.values(), *self.infos.values(), self.odom, self.command]
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), timeout, what="planner subscriptions")

    def send(self, stamp=None, ego=None, skip=(), image_override=None, info_override=None, odom_override=None):
        """One frame at ``stamp`` [ns] (default now); returns the stamp. Overrides: camera -> message."""
        t = self.now() if stamp is None else stamp
        ego = (ego or self.moving)(t) if ego is None or callable(ego) else ego
        for cam in RIG.cameras:
            if cam.name in skip:
                continue
            info = (info_override or {}).get(cam.name) or conv.camera_info(cam, t)
            self.infos[cam.name].publish(info)
            msg = (image_override or {}).get(cam.name)
            if msg is None:
                img = self.frame[cam.name]
                frame_id = f"{cam.name}_optical"
                msg = conv.raw_image(img, t, frame_id, "rgb8") if self.raw else conv.compressed_image(img, t, frame_id)
            self.images[cam.name].publish(msg)
        self.odom.publish(odom_override or conv.odometry(ego, t, "map", "base_link"))
        return t


class Collector(Node):
    """Records trajectories and diagnostics of a planner node."""

    def __init__(self, context, planner="/planner_node"):
        super().__init__("collector", context=context)
        self.paths: list[Path] = []
        self.diagnostics: list = []
        self.create_subscription(Path, f"{planner}/trajectory", self.paths.append, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 10)

    def _diag(self, msg):
        for status in msg.status:
            self.diagnostics.append(status)

    def path_for(self, stamp, timeout=10.0):
        """The first trajectory whose header stamp is exactly ``stamp`` [ns]."""
        return wait_until(
            lambda: next((p for p in list(self.paths) if time_ns(p.header.stamp) == stamp), None),
            timeout,
            what=f"a trajectory stamped {stamp} ns",
        )

    def diagnostic(self, predicate, timeout=10.0, what="a diagnostic"):
        return wait_until(lambda: next((d for d in list(self.diagnostics) if predicate(d)), None), timeout, what=what)


def set_remote(graph, name, value, ptype):
    """Set a parameter through the node's SetParameters service (as `ros2 param set` does)."""
    client_node = next((n for n in graph.nodes if n.get_name() == "param_client"), None)
    if client_node is None:
        client_node = graph.add(Node("param_client", context=graph.context))
    client = client_node.create_client(SetParameters, "/planner_node/set_parameters")
    assert client.wait_for_service(timeout_sec=10.0)
    field = {ParameterType.PARAMETER_STRING: "string_value", ParameterType.PARAMETER_DOUBLE: "double_value"}[ptype]
    pv = ParameterValue(type=ptype, **{field: value})
    future = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name=name, value=pv)]))
    wait_until(future.done, 10.0, what="set_parameters response")
    client_node.destroy_client(client)
    return future.result().results[0]


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def cv_checkpoint(folder, use_yaw_rate=True, rig=RIG, spec=None):
    return ConstantVelocityPlanner(rig, spec or TrajectorySpec(8, 0.5), use_yaw_rate).save(folder)


def sim_time_planner(graph, folder):
    """An active planner_node on simulated time over a constant-velocity checkpoint saved in ``folder``,
    spun by ``graph`` (the planner a bridge test drives with)."""
    from rclpy.parameter import Parameter

    from wamdiff_ros.ros.planner_node import PlannerNode

    model = cv_checkpoint(folder)
    planner = PlannerNode(
        context=graph.context,
        parameter_overrides=[Parameter("model_path", value=str(model)), Parameter("use_sim_time", value=True)],
    )
    planner.trigger_configure()
    planner.trigger_activate()
    return graph.add(planner)
