"""sim_bridge_node: the embedded world as a ROS simulator, with the CARLA-bridge contract.

The bridge owns the clock. Each tick it publishes ``/clock``, the rig's camera images and camera_info,
``/ego/odom`` (map -> base_link), ``/ego/command`` and ``/ego/instruction``, all stamped with the tick's
sim time; waits up to ``trajectory_timeout_s`` (wall) for a nav_msgs/Path on ``trajectory_topic``
stamped for this tick; tracks it with the controller and steps the world. Without an answer in time it
drives on the last plan (re-expressed at the current pose; a comfortable stop once it runs out) and
counts the timeout.

Episodes run round-robin over ``scenarios`` with seeds from ``split`` (as ``wamdiff collect`` picks
them). Sim time is continuous across episodes (each starts :data:`~wamdiff_ros.data.bag.EPISODE_GAP` s
after the previous ends), so subscribers never see time jump backwards. After each episode its metrics
(collision, at-fault, route completion, closed-loop PDMS-style score, comfort, plan latency, timeouts)
are published as JSON on ``~/episode_metrics`` and, with ``metrics_path``, written with a summary.

With ``publish_markers`` the ground truth is also shown as visualization_msgs/MarkerArray in the map
frame (:mod:`wamdiff_ros.ros.scene_markers`): ``~/map_markers`` (lanes, latched, once per episode) and
``~/scene_markers`` (agents and ego, every tick), for RViz and the demo's video.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import numpy as np
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from wamdiff_ros.atomic import atomic_write_json
from wamdiff_ros.data.bag import EPISODE_GAP_NS, START_TIME_NS
from wamdiff_ros.data.ros_types import BASE_FRAME, MAP_FRAME
from wamdiff_ros.geometry import relative
from wamdiff_ros.planning.fallback import HeldPlan
from wamdiff_ros.rig import load_rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.bridge_main import run_bridge
from wamdiff_ros.ros.interrupts import interrupt_once
from wamdiff_ros.ros.params import declare_from_schema, load_schema, schema_path, validate_change
from wamdiff_ros.ros.path_inbox import PathInbox, Shutdown
from wamdiff_ros.ros.sensor_publisher import SensorPublisher
from wamdiff_ros.stamps import NS_PER_S, ns_to_seconds, time_ns
from wamdiff_ros.types import LogFrame, PlanResult, Trajectory, TrajectorySpec

NODE_NAME = "sim_bridge_node"
STOP_DECEL = 3.0
"""Deceleration of the stop the bridge drives when it never got a plan [m/s²]."""

RELIABLE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def path_to_trajectory(msg: PathMsg, ego_pose: np.ndarray, odom_frame: str = MAP_FRAME) -> Trajectory:
    """A planner's Path -> base_link Trajectory at its header stamp; the grid is read from the pose stamps.

    ``msg`` must be in ``odom_frame`` (re-expressed relative to ``ego_pose``) or in base_link; pose k
    stamped ``header + (k + 1)·dt``. ValueError otherwise.
    """
    n = len(msg.poses)
    if n == 0:
        raise ValueError("Path: no poses")
    t0 = time_ns(msg.header.stamp)
    rel = np.array([time_ns(p.header.stamp) - t0 for p in msg.poses]) / NS_PER_S
    dt = rel[0]
    if not (dt > 0 and np.allclose(rel, dt * np.arange(1, n + 1), atol=1e-6)):
        raise ValueError(f"Path: pose stamps are not header + k·dt (offsets {np.round(rel, 4).tolist()})")
    poses = conv.path_poses(msg)
    if msg.header.frame_id == odom_frame:
        poses = relative(np.asarray(ego_pose, np.float64), poses)
    elif msg.header.frame_id != BASE_FRAME:
        raise ValueError(
            f"Path.header.frame_id: expected {odom_frame!r} or {BASE_FRAME!r}, got {msg.header.frame_id!r}"
        )
    if not np.isfinite(poses).all():
        raise ValueError("Path: non-finite poses")
    return Trajectory(poses, TrajectorySpec(n, float(dt)), BASE_FRAME, t0)


class _RosDriver:
    """run_episode's driver: publishes a tick, waits for the planner's Path, returns it as a PlanResult."""

    def __init__(self, node: SimBridgeNode, offset_ns: int):
        self.node = node
        self.offset_ns = offset_ns
        self.latencies_ms: list[float] = []
        self.timeouts = 0
        self.rejected = 0
        self._held = HeldPlan(STOP_DECEL)
        self.last_stamp_ns = offset_ns

    def reset(self) -> None:
        self._held.clear()

    def plan(self, frame: LogFrame, lanes, images) -> PlanResult:
        node, p = self.node, self.node.params
        t_ns = self.offset_ns + frame.stamp_ns
        t = ns_to_seconds(t_ns)
        self.last_stamp_ns = t_ns
        wall0 = time.perf_counter()
        node.publish_tick(frame, images, t_ns)
        msg = node.wait_for_path(t_ns, p["trajectory_timeout_s"])
        traj, info = None, {}
        if msg is not None:
            self.latencies_ms.append((time.perf_counter() - wall0) * 1e3)
            try:
                traj = path_to_trajectory(msg, frame.ego.pose)
            except ValueError as e:
                self.rejected += 1
                info["rejected"] = str(e)
                node.get_logger().warning(f"t={t:.2f}: planner trajectory rejected: {e}", throttle_duration_sec=2.0)
        else:
            self.timeouts += 1
            info["timeout"] = True
            node.get_logger().warning(
                f"t={t:.2f}: no trajectory within {p['trajectory_timeout_s']} s; driving on the last plan",
                throttle_duration_sec=2.0,
            )
        if traj is None:
            traj = self._held.at(t_ns, frame.ego)
            mode = "fallback"
        else:
            mode = "fast"
            self._held.hold(traj, frame.ego)
        if p["realtime_factor"] > 0:
            rest = p["tick_s"] / p["realtime_factor"] - (time.perf_counter() - wall0)
            if rest > 0:
                time.sleep(rest)
        return PlanResult(trajectory=traj, candidates=traj.poses[None], mode=mode, info=info)


class SimBridgeNode(Node):
    """See the module docstring. ``kwargs`` go to rclpy's Node (context, parameter_overrides, …)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._schema = load_schema(schema_path("sim_bridge"))
        self.params = declare_from_schema(self, self._schema, f"{self.get_fully_qualified_name()} parameters")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        from wamdiff_ros.sim.world import DT

        if abs(self.params["tick_s"] - DT) > 1e-9:
            raise ValueError(f"tick_s: the embedded world steps {DT} s per tick, got {self.params['tick_s']}")
        self.rig = load_rig(self.params["rig_path"])
        self.sensors = SensorPublisher.from_params(self, self.rig, RELIABLE, self.params)
        self._metrics_pub = self.create_publisher(String, "~/episode_metrics", RELIABLE)
        self._map_markers = self._scene_markers = None
        if self.params["publish_markers"]:
            self._map_markers = self.create_publisher(MarkerArray, "~/map_markers", LATCHED)
            self._scene_markers = self.create_publisher(MarkerArray, "~/scene_markers", RELIABLE)
        self._inbox = PathInbox(self.context)
        self.create_subscription(PathMsg, self.params["trajectory_topic"], self._inbox.put, RELIABLE)
        self.episodes: list[dict] = []
        from wamdiff_ros.data.collect import plan_jobs
        from wamdiff_ros.sim.scenarios import load_scenarios

        p = self.params
        self._jobs = plan_jobs(load_scenarios(list(p["scenarios"])), p["split"], p["episodes"], p["seed_offset"])

    def _on_set_parameters(self, params):
        return validate_change(self, self._schema, params, self.get_fully_qualified_name())

    # ---- per tick ------------------------------------------------------------------------------

    def publish_tick(self, frame: LogFrame, images: dict | None, t: int) -> None:
        """Publish a tick stamped ``t`` [ns]."""
        self.sensors.publish(images, frame.ego, t, frame.command, frame.instruction)
        if self._scene_markers is not None:
            from wamdiff_ros.ros.scene_markers import scene_markers
            from wamdiff_ros.sim.world import EGO_SIZE, REAR_AXLE_TO_CENTER

            self._scene_markers.publish(scene_markers(frame, t, EGO_SIZE, REAR_AXLE_TO_CENTER, MAP_FRAME))

    def wait_for_path(self, t: int, timeout: float) -> PathMsg | None:
        """The Path stamped ``t`` [ns] exactly, waiting up to ``timeout`` s of wall time."""
        return self._inbox.wait(t, timeout)

    # ---- episodes ------------------------------------------------------------------------------

    def wait_for_planner(self, timeout: float) -> bool:
        """Wait until a trajectory publisher is seen and the odometry and every camera have at least
        ``wait_for_subscribers`` matched subscribers (the planner, plus recorders that must not miss the start)."""
        deadline = time.monotonic() + timeout
        need = self.params["wait_for_subscribers"]
        while time.monotonic() < deadline:
            if not self.context.ok():
                raise Shutdown()
            if self.sensors.sensors_matched(need) and self.count_publishers(self.params["trajectory_topic"]) > 0:
                return True
            time.sleep(0.05)
        return False

    def run(self) -> list[dict]:
        """Run every episode; returns their metrics (dicts), also published and written."""
        from wamdiff_ros.sim.episode import run_episode, summarize
        from wamdiff_ros.sim.renderer import Renderer
        from wamdiff_ros.sim.world import World

        p = self.params
        jobs = self._jobs
        renderer = None
        offset = START_TIME_NS
        all_metrics = []
        for job_scenario, seed in jobs:
            scenario = job_scenario.with_duration_cap(p["max_duration_s"])
            world = World(scenario, seed)
            try:
                if renderer is None:
                    renderer = Renderer(self.rig, world.lanes)
                else:
                    renderer.set_lanes(world.lanes)
                driver = _RosDriver(self, offset)
                if self._map_markers is not None:
                    from wamdiff_ros.ros.scene_markers import lane_markers

                    self._map_markers.publish(lane_markers(world.lanes, offset, MAP_FRAME))
                self.get_logger().info(
                    f"episode {world.episode} ({scenario.kind}) starts at sim time {ns_to_seconds(offset):.1f} s"
                )
                result = run_episode(world, driver, renderer=renderer, score_every=p["score_every"])
            finally:
                world.close()
            all_metrics.append(result.metrics)
            lat = np.asarray(driver.latencies_ms)
            record = {
                **dataclasses.asdict(result.metrics),
                "episode": world.episode,
                "ticks": result.metrics.steps + 1,
                "trajectory_timeouts": driver.timeouts,
                "trajectories_rejected": driver.rejected,
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                "start_time": ns_to_seconds(offset),
            }
            self.episodes.append(record)
            self._metrics_pub.publish(String(data=json.dumps(record)))
            m = result.metrics
            self.get_logger().info(
                f"episode {world.episode}: {m.reason}, completion {m.route_completion:.2f}, "
                f"PDMS {m.mean_pdms:.3f}, timeouts {driver.timeouts}"
            )
            if p["metrics_path"]:
                atomic_write_json(p["metrics_path"], {"episodes": self.episodes, "summary": summarize(all_metrics)})
            offset = driver.last_stamp_ns + EPISODE_GAP_NS
        return self.episodes


@interrupt_once
def main(args: list[str] | None = None) -> int:
    """``sim_bridge_node [--ros-args ...]``: run the episodes, then exit (or keep spinning)."""
    return run_bridge(NODE_NAME, SimBridgeNode, _drive, args)


def _drive(node: SimBridgeNode) -> None:
    if not node.wait_for_planner(timeout=60.0):
        node.get_logger().warning("no planner seen on the trajectory topic after 60 s; starting anyway")
    node.run()


if __name__ == "__main__":
    sys.exit(main())
