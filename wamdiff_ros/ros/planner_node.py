"""planner_node: cameras + odometry in, a planned trajectory out (a thin rclpy lifecycle adapter).

Everything that decides what reaches the model and what gets published is in
:class:`wamdiff_ros.planning.PlanningLoop`; this node wires it to topics, parameters and the lifecycle:

- configure: load the rig and the checkpoint (refused if their rigs differ), warm the model up;
- activate: create publishers and subscriptions, start the planning thread;
- deactivate / cleanup: stop the thread and release them / drop the model.

Planning runs in its own thread, which also takes the input messages itself
(:class:`~wamdiff_ros.ros.input_poller.InputPoller`: no executor between the middleware and the
planner) and plans as soon as they complete a set, or falls back at least once per cycle period; the
executor thread serves only services, parameters, timers and /clock. Changing ``model_path`` (or
the backend) at run time first passes the checks that need no model built (folder, config.json,
family, rig, the weights' recorded SHA-256: :func:`~wamdiff_ros.planners.base.check_checkpoint`); a
checkpoint that fails them is refused by the parameter call itself, with the reason. Only then is it
loaded in a background thread (its ONNX graphs exported by a child process, off the GIL) and swapped in
atomically; one that fails to load or to run is rejected, the old model keeps driving, the parameters
go back to the model in use and /diagnostics says why.

Topics (``<prefix>`` = ``camera_topic_prefix``):

- in: ``<prefix>/<camera>/image/compressed`` (sensor_msgs/CompressedImage) or ``<prefix>/<camera>/image``
  (sensor_msgs/Image) per rig camera, ``<prefix>/<camera>/camera_info`` (a rig camera's ``image_topic`` and
  ``camera_info_topic`` replace these; images at another resolution with the rig's field of view are
  resized), ``odom_topic``
  (nav_msgs/Odometry), ``command_topic`` and ``instruction_topic`` (std_msgs/String);
- out: ``~/trajectory`` (nav_msgs/Path), ``~/candidates`` (visualization_msgs/MarkerArray),
  ``~/reasoning`` (std_msgs/String), ``~/debug/processing_time_ms`` (the cycle),
  ``~/debug/planner_time_ms`` (the planner's ``plan`` call alone, plans only) and
  ``~/debug/pipeline_latency_ms`` (std_msgs/Float64), ``/diagnostics`` (diagnostic_msgs/DiagnosticArray,
  also while inactive).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float64, String
from visualization_msgs.msg import MarkerArray

from wamdiff_ros.geometry import compose
from wamdiff_ros.planners.base import CheckpointCheck, check_checkpoint
from wamdiff_ros.planners.export import export_in_subprocess
from wamdiff_ros.planning import CycleOutput, LoopConfig, PlanningLoop
from wamdiff_ros.planning.loop import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN
from wamdiff_ros.planning.model import load_checked_planner, resolve_model
from wamdiff_ros.rig import Rig, load_rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.executors import make_executor, spin
from wamdiff_ros.ros.input_poller import InputPoller
from wamdiff_ros.ros.interrupts import interrupt_once
from wamdiff_ros.ros.params import declare_from_schema, load_schema, schema_path, validate_change
from wamdiff_ros.ros.qos import incompatible_publishers, publisher_events, qos_profile, subscription_events

NODE_NAME = "planner_node"
CLOCK_POLL_S = 0.005
"""How often the planning thread re-checks a set held back for the node clock (PlanningLoop.waiting_for_clock)."""
RELOAD_KEYS = ("model_path", "backend", "device", "precision", "engine_path", "threads")
"""Parameters whose change reloads the model in the background."""
CONFIGURE_KEYS = ("rig_path", "image_format", "camera_topic_prefix", "odom_topic", "command_topic")
CONFIGURE_KEYS += ("instruction_topic", "input_qos", "build_only")
"""Parameters read at configure / activate: a change applies after cleanup + configure (or deactivate + activate)."""


class PlannerNode(LifecycleNode):
    """The lifecycle node; see the module docstring. ``kwargs`` go to rclpy's Node (context, overrides…)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._schema = load_schema(schema_path("planner"))
        self.params = declare_from_schema(self, self._schema, f"{self.get_fully_qualified_name()} parameters")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._loop: PlanningLoop | None = None
        self._rig: Rig | None = None
        self._model_folder: Path | None = None
        self._status = "unconfigured"
        self._error = ""
        self._reload_status = ""
        self._reload_lock = threading.Lock()
        self._reloads = {"ok": 0, "rejected": 0}
        self._in_use: dict = {}
        """The RELOAD_KEYS values of the model planning now (what a failed reload sets the parameters back to)."""
        self._reverting = threading.local()
        """``active`` while a failed reload sets the parameters back, so that change starts no reload."""
        self._frames = ("map", "base_link")
        self._pubs: dict = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._poller: InputPoller | None = None
        self._seen: dict[str, bytes] = {}
        """Per input read only on change (camera_info, command, instruction): its last serialized content."""
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._qos_problems: dict[str, str] = {}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=publisher_events())
        self._diag_timer = self._diagnostics_timer(self.params["diagnostics_period_s"])

    # ---- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        try:
            rig = load_rig(p["rig_path"])
            planner, folder = load_checked_planner(p, rig)
        except Exception as e:
            self._error = f"model not loaded: {e}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        self._rig, self._model_folder, self._error = rig, folder, ""
        self._in_use = {k: p[k] for k in RELOAD_KEYS}
        self._loop = PlanningLoop(planner, rig, LoopConfig.from_params(p), conv.decode_image, conv.ego_from_odometry)
        self._status = "inactive"
        self.get_logger().info(f"configured: {planner.family} from {folder}, rig {rig.name} ({', '.join(rig.names)})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        p, rig = self.params, self._rig
        raw = p["image_format"] == "raw"
        qos_in = qos_profile(p["input_qos"])
        prefix = p["camera_topic_prefix"].rstrip("/")
        # Taken by the planning thread, in this order; without QoS event handlers (see subscription_events:
        # publishers with incompatible QoS are looked up with each diagnostics update instead).
        self._seen = {}
        poller = self._poller = InputPoller(self)
        subscribe = functools.partial(poller.subscribe, event_callbacks=subscription_events())
        qos_cmd = qos_profile("default")
        on_command = functools.partial(self._on_text, "command", self._loop.on_command)
        on_instruction = functools.partial(self._on_text, "instruction", self._loop.on_instruction)
        subscribe(String, p["command_topic"], on_command, qos_cmd, raw=True)
        subscribe(String, p["instruction_topic"], on_instruction, qos_cmd, raw=True)
        subscribe(Odometry, p["odom_topic"], self._on_odom, qos_in, raw=True)
        for cam in rig.cameras:
            on_image = functools.partial(self._on_image, cam.name, not raw)
            subscribe(Image if raw else CompressedImage, cam.images_on(not raw, prefix), on_image, qos_in, raw=True)
            on_info = functools.partial(self._on_camera_info, cam.name)
            subscribe(CameraInfo, cam.camera_info_on(prefix), on_info, qos_in, raw=True)
        clock_sub = getattr(getattr(self, "_time_source", None), "_clock_sub", None)  # use_sim_time only
        if clock_sub is not None:
            poller.adopt(clock_sub, functools.partial(self._on_clock, clock_sub.callback))
        self._pubs = {
            key: self.create_publisher(msg_type, topic, 10, event_callbacks=publisher_events())
            for key, msg_type, topic in (
                ("trajectory", PathMsg, "~/trajectory"),
                ("candidates", MarkerArray, "~/candidates"),
                ("reasoning", String, "~/reasoning"),
                ("processing", Float64, "~/debug/processing_time_ms"),
                ("planner_time", Float64, "~/debug/planner_time_ms"),
                ("latency", Float64, "~/debug/pipeline_latency_ms"),
            )
        }
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="planner_node.planning", daemon=True)
        self._thread.start()
        self._status = "active"
        return TransitionCallbackReturn.SUCCESS

    def _check_input_qos(self) -> None:
        """Record (and log once) each input topic that has a publisher whose QoS it cannot match."""
        for sub in list(self._poller.subscriptions if self._poller is not None else ()):
            try:
                topic = sub.topic_name  # resolved: namespace and remappings applied
                found = incompatible_publishers(self, topic, sub.qos_profile)
            except Exception:  # the subscription went away under us (deactivate)
                continue
            if not found:
                self._qos_problems.pop(topic, None)
                continue
            problem = f"{topic}: incompatible QoS, messages not received from {'; '.join(found)}"
            if self._qos_problems.get(topic) != problem:
                self.get_logger().warning(problem)
            self._qos_problems[topic] = problem

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._release_io()
        self._status = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release_io()
        self._loop, self._rig, self._model_folder = None, None, None
        self._status = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.on_cleanup(state)
        self._status = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.on_cleanup(state)
        return TransitionCallbackReturn.SUCCESS

    def _release_io(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._poller is not None:
            self._poller.destroy()
            self._poller = None
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self._qos_problems.clear()

    # ---- inputs --------------------------------------------------------------------------------

    def _now(self) -> int:
        """Node time [ns]."""
        return self.get_clock().now().nanoseconds

    def _on_image(self, camera: str, compressed: bool, data: bytes) -> bool:
        """Images arrive serialized; only their header and format are read here (see conv.read_image)."""
        try:
            image = conv.read_image(data, compressed)
        except ValueError as e:
            self.get_logger().warning(f"camera {camera}: {e}", throttle_duration_sec=5.0)
            return False
        return self._loop.on_image(camera, image.stamp_ns, image)

    def _on_camera_info(self, camera: str, data: bytes) -> None:
        """Check a serialized camera_info when it differs from the camera's previous one beyond its stamp:
        drivers republish the same calibration with every image, and deserializing it each time cost the
        input path about 0.1 ms a frame."""
        content = data[conv.CDR_STAMP_END :]
        if self._seen.get(f"camera_info {camera}") == content:
            return
        try:
            msg = deserialize_message(data, CameraInfo)
        except Exception as e:
            problem = f"camera_info {camera}: not a sensor_msgs/CameraInfo: {e}"
            self.get_logger().warning(problem, throttle_duration_sec=5.0)
            return
        self._loop.on_camera_info(camera, msg.width, msg.height, msg.k)
        self._seen[f"camera_info {camera}"] = content

    def _on_text(self, topic: str, apply: Callable[[str], None], data: bytes) -> None:
        """A serialized command or instruction, read when it differs from the previous one: simulators
        and bags repeat them with every frame, and the planning thread takes them before planning."""
        if self._seen.get(topic) == data:
            return
        try:
            text = conv.read_string(data)
        except ValueError as e:
            self.get_logger().warning(f"{topic}: {e}", throttle_duration_sec=5.0)
            return
        apply(text)
        self._seen[topic] = data

    def _on_clock(self, set_clock: Callable[[Any], None], msg: Any) -> bool:
        """/clock under ``use_sim_time``, taken with the inputs (see InputPoller.adopt): set the node clock
        as rclpy's TimeSource does, and end the wait early when a set is held back for the clock."""
        set_clock(msg)
        return self._loop.waiting_for_clock

    def _on_odom(self, data: bytes) -> bool:
        """Odometry arrives serialized and is read for its planar fields only (see conv.read_odometry)."""
        try:
            odom = conv.read_odometry(data)
        except ValueError as e:
            self.get_logger().warning(str(e), throttle_duration_sec=5.0)
            return False
        self._frames = (odom.frame_id or "map", odom.child_frame_id or "base_link")
        return self._loop.on_odometry(odom.stamp_ns, odom)

    # ---- planning thread -----------------------------------------------------------------------

    def _run(self) -> None:
        """Take inputs until a complete set is ready or a cycle period passed, then run a cycle."""
        loop, poller, stopped = self._loop, self._poller, self._stop.is_set
        while not stopped():
            try:
                out = loop.step(self._now())
                if out is not None:
                    self._publish(out)
                    continue
                poller.take(CLOCK_POLL_S if loop.waiting_for_clock else loop.config.period, stopped)
            except Exception as e:  # a bug must not kill the planning thread silently
                if not self.context.ok():  # a signal shut the context down before main() stopped this thread
                    return
                self.get_logger().error(f"planning cycle failed: {type(e).__name__}: {e}")
                self._stop.wait(loop.config.period)

    def _publish(self, out: CycleOutput) -> None:
        p, pubs = self.params, self._pubs
        odom_frame, base_frame = self._frames
        poses, candidates, dt = out.result.trajectory.poses, out.result.candidates, out.result.trajectory.spec.dt
        in_odom = p["trajectory_frame"] == "odom" and out.origin is not None
        frame, origin = (odom_frame, out.origin) if in_odom else (base_frame, np.zeros(3))
        pubs["trajectory"].publish(conv.path_cdr(compose(origin, poses) if in_odom else poses, out.stamp_ns, dt, frame))
        if p["publish_candidates"]:  # after the trajectory, which is what a controller waits for
            shown = compose(origin, candidates) if in_odom else candidates
            scores = out.result.candidate_scores
            pubs["candidates"].publish(conv.candidate_markers(shown, scores, origin, out.stamp_ns, frame))
        if out.result.reasoning:
            pubs["reasoning"].publish(String(data=out.result.reasoning))
        pubs["processing"].publish(Float64(data=out.processing_ms))
        if out.planner_ms is not None:
            pubs["planner_time"].publish(Float64(data=out.planner_ms))
        if out.input_stamp_ns is not None:
            pubs["latency"].publish(Float64(data=(self._now() - out.input_stamp_ns) * 1e-6))
        if out.deadline_missed:
            self.get_logger().warning(
                f"deadline missed: {out.processing_ms:.1f} ms > {p['deadline_ms']:g} ms", throttle_duration_sec=5.0
            )
        if out.kind != "plan":
            self.get_logger().warning(f"fallback ({out.kind}): {'; '.join(out.reasons)}", throttle_duration_sec=2.0)

    # ---- parameters and hot reload -------------------------------------------------------------

    def _on_set_parameters(self, params) -> SetParametersResult:
        result = validate_change(self, self._schema, params, self.get_fully_qualified_name())
        if not result.successful:
            return result
        sim_time = next((p.value for p in params if p.name == "use_sim_time"), None)
        if self._poller is not None and sim_time is not None and sim_time != self.get_parameter("use_sim_time").value:
            reason = "use_sim_time: the planning thread takes /clock while the node is active; deactivate it first"
            return SetParametersResult(successful=False, reason=reason)
        new = {p.name: p.value for p in params if p.name in self._schema["properties"]}
        merged = {**self.params, **new}
        reload = self._loop is not None and any(k in new and new[k] != self.params[k] for k in RELOAD_KEYS)
        reload = reload and not getattr(self._reverting, "active", False)
        if reload:
            try:
                check = check_checkpoint(resolve_model(merged["model_path"]), self._rig)
            except ValueError as e:
                return SetParametersResult(successful=False, reason=f"model_path refused: {e}")
            if not check.weights_verified:
                self.get_logger().warning(check.summary)
        self.params = merged
        loop = self._loop
        if loop is not None:
            loop.config = LoopConfig.from_params(merged)
            if "reasoning_mode" in new and loop.planner is not None:
                loop.planner.set_mode(merged["reasoning_mode"])
            if reload:
                threading.Thread(target=self._reload, args=(dict(merged), check), daemon=True).start()
        if "diagnostics_period_s" in new:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self._diagnostics_timer(merged["diagnostics_period_s"])
        later = [k for k in CONFIGURE_KEYS if k in new and self._loop is not None]
        if later:
            self.get_logger().info(f"{', '.join(later)} will apply at the next configure/activate")
        return SetParametersResult(successful=True)

    def _reload(self, params: dict, check: CheckpointCheck) -> None:
        with self._reload_lock:
            loop, rig = self._loop, self._rig
            if loop is None:
                return
            self._reload_status = f"loading {params['model_path']}"
            try:
                export_in_subprocess(resolve_model(params["model_path"]), params["backend"])
                planner, folder = load_checked_planner(params, rig)
            except Exception as e:
                self._reloads["rejected"] += 1
                rejected = f"rejected {params['model_path']}: {type(e).__name__}: {e}"
                self._reload_status = f"{rejected}; {self._revert(params)}"
                self.get_logger().error(f"hot reload {self._reload_status}")
                return
            loop.swap_planner(planner)
            self._model_folder = folder
            self._in_use = {k: params[k] for k in RELOAD_KEYS}
            self._reloads["ok"] += 1
            self._reload_status = f"loaded {folder}" if check.weights_verified else f"loaded {check.summary}"
            self.get_logger().info(f"hot reload: now planning with {folder}")

    def _revert(self, failed: dict) -> str:
        """After the reload of ``failed`` parameters failed: set the reload parameters back to the model in
        use (starting no reload), unless a newer change has replaced them meanwhile; says what it did."""
        if any(self.params[k] != failed[k] for k in RELOAD_KEYS):
            return f"still planning with {self._model_folder}; a newer change is queued"
        back = [Parameter(k, value=v) for k, v in self._in_use.items() if self.params[k] != v]
        self._reverting.active = True
        try:
            results = self.set_parameters(back)
        finally:
            self._reverting.active = False
        refused = [f"{p.name}: {r.reason}" for p, r in zip(back, results, strict=True) if not r.successful]
        if refused:
            return f"still planning with {self._model_folder}; could not set back {'; '.join(refused)}"
        names = ", ".join(f"{p.name}={p.value}" for p in back)
        return f"still planning with {self._model_folder}; parameters set back ({names})"

    # ---- diagnostics ---------------------------------------------------------------------------

    def _diagnostics_timer(self, period: float):
        """/diagnostics on the steady clock: health keeps being reported when a simulator or a bag stops
        /clock (with ``use_sim_time`` a node-clock timer would fall silent just then)."""
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        return self.create_timer(period, self._publish_diagnostics, callback_group=self._timer_group, clock=steady)

    def _publish_diagnostics(self) -> None:
        self._check_input_qos()
        now = self._now()
        loop = self._loop
        if loop is None:
            level, message = LEVEL_ERROR, self._error or "model not loaded"
            values = {"model_loaded": "false"}
        else:
            health = loop.health(now)
            level, message, values = health.level, health.message, dict(health.values)
        values["state"] = self._status
        values["model_path"] = str(self._model_folder or "")
        values["model_path_parameter"] = self.params["model_path"]
        values["reloads_ok"] = str(self._reloads["ok"])
        values["reloads_rejected"] = str(self._reloads["rejected"])
        if self._reload_status:
            values["reload"] = self._reload_status
            if self._reload_status.startswith("rejected") and level == LEVEL_OK:
                level, message = LEVEL_WARN, f"hot reload {self._reload_status}"
        for topic, problem in list(self._qos_problems.items()):
            values[f"qos_{topic}"] = problem
            if level == LEVEL_OK:
                level, message = LEVEL_WARN, problem
        if self._status == "inactive" and level == LEVEL_OK:
            message = "inactive"
        stamp = max(now, 0)
        self._diag_pub.publish(
            conv.diagnostic_array(
                stamp, f"{self.get_name()}: planning", self.get_fully_qualified_name(), level, message, values
            )
        )


@interrupt_once
def main(args: list[str] | None = None) -> int:
    """``planner_node [--ros-args ...]``: create the node, configure + activate it if ``autostart``."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = PlannerNode()
        if node.params["autostart"] or node.params["build_only"]:
            ok = node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            if node.params["build_only"]:
                node.get_logger().info("build_only: model built" if ok else "build_only: failed")
                return 0 if ok else 1
            if ok:
                node.trigger_activate()
        # One executor thread for services, parameters, timers and /clock; the planning thread takes the inputs
        # itself. A MultiThreadedExecutor's dispatch loop here kept the GIL so busy that plans took 2-7 s.
        executor, kind, why = make_executor(node.params["executor"], node.context)
        if why:
            node.get_logger().warning(why)
        node.get_logger().info(f"spinning the {kind} executor")
        executor.add_node(node)
        spin(executor, node.context)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:
        if node is None or node.context.ok():  # else: the executor's wait failing as Ctrl-C shuts the context
            print(f"planner_node: {type(e).__name__}: {e}", file=sys.stderr)
            code = 1
    finally:
        if node is not None:
            node._release_io()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
