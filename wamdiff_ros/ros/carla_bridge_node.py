"""carla_bridge_node: closed loop on a CARLA server, with the contract of ``sim_bridge_node``.

The bridge owns the clock. Each tick (synchronous mode, ``fixed_delta_seconds``) it publishes
``/clock`` and ``/ego/odom`` (base_link in the map frame, REP-103); every ``ticks_per_plan`` ticks it
also publishes the rig's camera images and camera_info (the planner's topic names and format),
``/ego/command`` and ``/ego/instruction`` from the route, and waits up to ``trajectory_timeout_s``
(wall) for a nav_msgs/Path on ``trajectory_topic`` stamped for that tick. Between plans, and when no
plan came in time, it drives on the last plan re-expressed at the current pose (a comfortable stop once
it runs out). Every tick the plan is tracked with the project's controller (pure pursuit + speed PID on
the vehicle's own wheelbase and steering limit) and applied as ``carla.VehicleControl``.

Routes come from ``routes_path`` (YAML or leaderboard XML) or are generated along the lanes; town and
weather by parameter. After each route its leaderboard-style metrics (route completion, infractions,
driving score) go out as JSON on ``~/route_metrics`` and, with ``metrics_path``, into a file with the
global record. The CARLA session restores the world's settings and destroys every actor it spawned on
exit, Ctrl-C and error. All CARLA-specific work lives in :mod:`wamdiff_ros.carla`.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from std_msgs.msg import String

from wamdiff_ros.control.pure_pursuit import PurePursuitParams
from wamdiff_ros.control.tracker import Tracker, TrackerParams
from wamdiff_ros.data.bag import EPISODE_GAP_NS, START_TIME_NS
from wamdiff_ros.planning.fallback import HeldPlan
from wamdiff_ros.rig import load_rig
from wamdiff_ros.ros.bridge_main import run_bridge
from wamdiff_ros.ros.interrupts import interrupt_once
from wamdiff_ros.ros.params import declare_from_schema, load_schema, schema_path, validate_change
from wamdiff_ros.ros.path_inbox import PathInbox, Shutdown
from wamdiff_ros.ros.sensor_publisher import SensorPublisher
from wamdiff_ros.ros.sim_bridge_node import RELIABLE, STOP_DECEL, path_to_trajectory
from wamdiff_ros.stamps import ns_to_seconds, seconds_to_ns

NODE_NAME = "carla_bridge_node"


class CarlaBridgeNode(Node):
    """See the module docstring. ``client_factory(host, port)`` replaces ``carla.Client`` (tests use a
    double of the CARLA world); ``kwargs`` go to rclpy's Node."""

    def __init__(self, node_name: str = NODE_NAME, client_factory=None, **kwargs):
        super().__init__(node_name, **kwargs)
        self._schema = load_schema(schema_path("carla_bridge"))
        self.params = declare_from_schema(self, self._schema, f"{self.get_fully_qualified_name()} parameters")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._client_factory = client_factory
        self.rig = load_rig(self.params["rig_path"])
        self.sensors = SensorPublisher.from_params(self, self.rig, RELIABLE, self.params)
        self._metrics_pub = self.create_publisher(String, "~/route_metrics", RELIABLE)
        self.inbox = PathInbox(self.context)
        self.create_subscription(PathMsg, self.params["trajectory_topic"], self.inbox.put, RELIABLE)
        self.routes: list[dict] = []
        self._carla_info: dict = {}

    def _on_set_parameters(self, params):
        return validate_change(self, self._schema, params, self.get_fully_qualified_name())

    def wait_for_planner(self, timeout: float) -> bool:
        """Wait until something subscribes to the odometry and a trajectory publisher is matched."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.context.ok():
                raise Shutdown()
            if (
                self.sensors.odom.get_subscription_count() > 0
                and self.count_publishers(self.params["trajectory_topic"]) > 0
            ):
                return True
            time.sleep(0.05)
        return False

    # ---- routes --------------------------------------------------------------------------------

    def run(self, planner_timeout: float = 0.0) -> list[dict]:
        """Connect, wait up to ``planner_timeout`` s for a planner (0: don't), drive every route; returns
        their records (also published and written)."""
        from wamdiff_ros.carla.routes import load_routes, select_routes
        from wamdiff_ros.carla.session import CarlaSession, SessionConfig

        p = self.params
        config = SessionConfig(
            host=p["host"],
            port=p["port"],
            timeout_s=p["timeout_s"],
            fixed_delta_seconds=p["fixed_delta_seconds"],
            sensor_timeout_s=p["sensor_timeout_s"],
            allow_version_mismatch=p["allow_version_mismatch"],
        )
        specs = select_routes(load_routes(p["routes_path"]), p["route_names"]) if p["routes_path"] else [None]
        offset = START_TIME_NS
        with CarlaSession(config, self._client_factory) as session:
            self._carla_info = {
                "server_version": session.server_version,
                "endpoint": f"{p['host']}:{p['port']}",
                "fixed_delta_seconds": p["fixed_delta_seconds"],
                "ticks_per_plan": p["ticks_per_plan"],
            }
            self.get_logger().info(f"connected to CARLA {session.server_version} at {p['host']}:{p['port']}")
            if planner_timeout > 0 and not self.wait_for_planner(planner_timeout):
                self.get_logger().warning(
                    f"no planner seen on the trajectory topic after {planner_timeout:g} s; starting"
                )
            for index, spec in enumerate(specs):
                town = p["town"] or (spec.town if spec is not None else "")
                if spec is not None and p["town"] and spec.town and spec.town != p["town"]:
                    self.get_logger().warning(f"route {spec.name}: town parameter {p['town']} overrides {spec.town}")
                weather = p["weather"] or (spec.weather if spec is not None else None) or None
                session.load(town, weather)
                route, spawn = self._plan(session, spec, index)
                record = self._drive(session, route, spawn, offset)
                offset += record["ticks"] * seconds_to_ns(p["fixed_delta_seconds"]) + EPISODE_GAP_NS
        return self.routes

    def _plan(self, session, spec, index: int):
        """The dense route and the ego's spawn transform."""
        from wamdiff_ros.carla import frames
        from wamdiff_ros.carla.routes import generate_route, snap, trace_route

        p = self.params
        spawn_points = session.spawn_points()
        chosen = None
        if p["spawn_point"] >= 0 or spec is None:
            i = max(p["spawn_point"], 0)
            if i >= len(spawn_points):
                raise ValueError(f"spawn_point: the map {session.town} has {len(spawn_points)} spawn points, got {i}")
            chosen = spawn_points[i]
        if spec is None:
            start = snap(session.map, frames.location_to_ros(chosen.location))
            rng = np.random.default_rng(p["route_seed"] + index)
            route = generate_route(
                session.map, start, p["generated_route_length_m"], rng, p["route_step_m"], "generated", session.town
            )
        else:
            route = trace_route(session.map, spec, p["route_step_m"])
        if chosen is None:
            start = np.array([route.points[0, 0], route.points[0, 1], route.yaw[0]])
            chosen = frames.pose2d_to_transform(start, z=route.points[0, 2] + session.config.spawn_z_offset)
        self.get_logger().info(f"route {route.name}: {route.length:.0f} m on {session.town or 'the loaded map'}")
        return route, chosen

    def _drive(self, session, route, spawn, offset: int) -> dict:
        """Drive one route; the bridge clock starts at ``offset`` [ns]."""
        from wamdiff_ros.carla.control import ControlLimits, vehicle_control
        from wamdiff_ros.carla.metrics import MetricsConfig, RouteMonitor, write_metrics

        p = self.params
        dt = p["fixed_delta_seconds"]
        dt_ns = seconds_to_ns(dt)
        ego = session.spawn_ego(p["ego_blueprint"], spawn, self.rig, p["role_name"])
        pursuit = PurePursuitParams(wheelbase=ego.wheelbase, steer_model="rear_axle")
        tracker = Tracker(TrackerParams(pursuit=pursuit, max_steer=ego.max_steer), dt=dt)
        limits = ControlLimits(ego.max_steer, p["max_accel"], p["max_decel"], standstill_brake=p["standstill_brake"])
        monitor = RouteMonitor(
            route,
            MetricsConfig(
                timeout_s_per_m=p["route_timeout_s_per_m"],
                timeout_extra_s=p["route_timeout_extra_s"],
                blocked_speed=p["blocked_speed"],
                blocked_time_s=p["blocked_time_s"],
                deviation_m=p["route_deviation_m"],
            ),
        )
        held = HeldPlan(STOP_DECEL)
        latencies, timeouts, rejected, plans = [], 0, 0, 0
        k, reason = 0, None
        try:
            while reason is None:
                t = offset + k * dt_ns
                tick_wall = time.perf_counter()
                planning = k % p["ticks_per_plan"] == 0
                tick = session.tick(t, k * dt, want_images=planning)
                reason = monitor.update(tick.facts)
                if reason is None and 0 < p["max_duration_s"] <= k * dt:
                    reason = "max_duration"
                self.sensors.publish_state(tick.ego, t)
                if reason is not None:
                    break
                if planning:
                    command, text = route.command_at(
                        monitor.progress, p["junction_lookahead_m"], p["lane_change_lookahead_m"]
                    )
                    wall0 = time.perf_counter()
                    self.sensors.publish_sensors(tick.images, t, command, text)
                    msg = self.inbox.wait(t, p["trajectory_timeout_s"])
                    if msg is None:
                        timeouts += 1
                        self.get_logger().warning(
                            f"t={ns_to_seconds(t):.2f}: no trajectory within {p['trajectory_timeout_s']} s; "
                            "driving on the last plan",
                            throttle_duration_sec=2.0,
                        )
                    else:
                        latencies.append((time.perf_counter() - wall0) * 1e3)
                        try:
                            held.hold(path_to_trajectory(msg, tick.ego.pose), tick.ego)
                            plans += 1
                        except ValueError as e:
                            rejected += 1
                            self.get_logger().warning(
                                f"t={ns_to_seconds(t):.2f}: trajectory rejected: {e}", throttle_duration_sec=2.0
                            )
                accel, steer = tracker.track(held.at(t, tick.ego), tick.ego)
                session.apply_control(vehicle_control(accel, steer, tick.ego.speed, limits))
                if p["realtime_factor"] > 0:
                    time.sleep(max(dt / p["realtime_factor"] - (time.perf_counter() - tick_wall), 0.0))
                k += 1
        except Shutdown:
            reason = "shutdown"
            raise
        finally:
            session.release_actors()
            if reason is not None:
                lat = np.asarray(latencies)
                record = {
                    **monitor.record(reason),
                    "ticks": k + 1,
                    "plans": plans,
                    "trajectory_timeouts": timeouts,
                    "trajectories_rejected": rejected,
                    "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                    "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                    "start_time": ns_to_seconds(offset),
                }
                self.routes.append(record)
                self._metrics_pub.publish(String(data=json.dumps(record)))
                if p["metrics_path"]:
                    write_metrics(p["metrics_path"], self.routes, {"carla": self._carla_info})
                s = record["scores"]
                self.get_logger().info(
                    f"route {route.name}: {reason}, completion {s['score_route']:.1f} %, "
                    f"penalty {s['score_penalty']:.3f}, driving score {s['score_composed']:.1f}, "
                    f"trajectory timeouts {timeouts}"
                )
        return record


@interrupt_once
def main(args: list[str] | None = None) -> int:
    """``carla_bridge_node [--ros-args ...]``: drive the routes on the CARLA server, then exit (or keep spinning)."""
    return run_bridge(NODE_NAME, CarlaBridgeNode, lambda node: node.run(planner_timeout=60.0), args)


if __name__ == "__main__":
    sys.exit(main())
