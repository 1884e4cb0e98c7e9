"""rl_finetune_node: offline RL fine-tuning (GSPO / GRPO) on replayed bags as a ROS 2 node.

The run is :func:`wamdiff_ros.training.rl.session.build_trainer`, the same as ``wamdiff rl``, on a
worker thread. The node publishes ``~/progress`` (std_msgs/String, one JSON record per optimiser step
and per validation) and ``/diagnostics`` (step, reward, KL, validation PDMS, what was published). Each
validation that beats the last published checkpoint (by ``min_improvement``) is copied to
``<out_dir>/published/step-NNNNNN/`` (immutable, written under a temporary name and renamed) and, with
``planner_node`` set, that folder becomes the live planner's ``model_path`` through its
``set_parameters`` service, so the planner hot-reloads it (and rejects it with a reason if it is bad).

Ctrl-C (or SIGTERM) asks the trainer to finish its step and save ``last/``; with ``resume`` the next
start continues from there.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from wamdiff_ros.planning.loop import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.ros.interrupts import interrupt_once
from wamdiff_ros.ros.params import declare_from_schema, load_schema, schema_path, validate_change

NODE_NAME = "rl_finetune_node"
PUBLISHED = "published"


def publish_checkpoint(best: Path, out_dir: Path, step: int) -> Path:
    """Copy ``best`` to ``<out_dir>/published/step-<step>/`` atomically; returns the new folder."""
    from wamdiff_ros.training.checkpointing import staged_dir

    target = Path(out_dir) / PUBLISHED / f"step-{step:06d}"
    with staged_dir(target) as tmp:
        for f in Path(best).iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
    return target


class RLFinetuneNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.schema = load_schema(schema_path("rl_finetune"))
        self.params = declare_from_schema(self, self.schema, NODE_NAME)
        self.add_on_set_parameters_callback(lambda ps: validate_change(self, self.schema, ps, NODE_NAME))
        self._progress_pub = self.create_publisher(String, "~/progress", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._lock = threading.Lock()
        self._status = {"state": "starting"}
        self._level, self._message = LEVEL_OK, "starting"
        self._published: dict | None = None
        self.summary: dict | None = None
        self.error: str = ""
        self.trainer = None
        self._worker: threading.Thread | None = None
        self._set_params = None
        if self.params["planner_node"]:
            self._set_params = self.create_client(SetParameters, f"{self.params['planner_node']}/set_parameters")
        self.create_timer(self.params["diagnostics_period_s"], self._publish_diagnostics)

    # ---- run -------------------------------------------------------------------------------------

    def build(self) -> None:
        """Build the trainer from the parameters (ValueError / CheckpointError / ConfigError on bad input)."""
        from wamdiff_ros.paths import resolve
        from wamdiff_ros.training.rl.session import build_trainer
        from wamdiff_ros.training.rl.settings import RLSettings
        from wamdiff_ros.training.rl.trainer import LAST

        p = self.params
        settings = RLSettings.from_yaml(p["settings_path"]).replace(
            algorithm=p["algorithm"] or None,
            max_minutes=p["max_minutes"] or None,
            max_steps=p["max_steps"] or None,
            threads=p["threads"] or None,
        )
        out = Path(p["out_dir"])
        resume = bool(p["resume"]) and (out / LAST).exists()
        self.trainer = build_trainer(
            resolve(p["model_path"], "models"),
            list(p["data"]),
            out,
            settings,
            [v for v in p["val_data"] if v] or None,
            resume=resume,
            progress=False,
            log=lambda msg: self.get_logger().info(msg),
            on_step=self._on_step,
            on_best=self._on_best,
        )
        self._resume = resume
        self.get_logger().info(
            f"{settings.algorithm.upper()} on {len(self.trainer.scenes)} scenes, G={settings.group_size}, "
            f"out {out}" + (" (resuming)" if resume else "")
        )

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="rl-trainer", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            self.summary = self.trainer.run(resume=self._resume)
            self._set_state("done", LEVEL_OK, f"finished: {self.summary['stop_reason']}")
        except Exception as e:  # the node reports the failure and exits non-zero; last/ holds the last save
            self.error = f"{type(e).__name__}: {e}"
            self._set_state("failed", LEVEL_ERROR, self.error)
            self.get_logger().error(f"training failed: {self.error}")

    def done(self) -> bool:
        return self._worker is not None and not self._worker.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the trainer to save and stop; wait for it."""
        if self.trainer is not None:
            self.trainer.request_stop()
        if self._worker is not None:
            self._worker.join(timeout)

    # ---- callbacks from the trainer thread -------------------------------------------------------

    def _on_step(self, rec: dict) -> None:
        self._publish_progress({"kind": "step", **rec})
        with self._lock:
            self._status.update(
                state="training",
                step=rec["step"] + 1,
                reward_mean=f"{rec['reward_mean']:.4f}",
                kl=f"{rec['kl']:.2e}",
                clip_fraction=f"{rec['clip_fraction']:.3f}",
            )
            if self._level == LEVEL_OK:
                self._message = f"step {rec['step'] + 1}"

    def _on_best(self, best: Path, rec: dict) -> None:
        self._publish_progress({"kind": "validation", **rec})
        reference = self._published or self.trainer.state["initial"] or {}
        margin = self.params["min_improvement"]
        if margin > 0 and rec.get("PDMS", 0.0) - reference.get("PDMS", 0.0) <= margin:
            return
        folder = publish_checkpoint(best, Path(self.params["out_dir"]), rec["step"])
        self._published = {**rec, "path": str(folder)}
        with self._lock:
            self._status.update(published=str(folder), published_pdms=f"{rec['PDMS']:.4f}")
        self.get_logger().info(f"published {folder} (validation PDMS {rec['PDMS']:.4f})")
        if self._set_params is not None and self.context.ok():
            self._request_reload(folder)

    def _request_reload(self, folder: Path) -> None:
        timeout = self.params["set_parameter_timeout_s"]
        planner = self.params["planner_node"]
        if not self._set_params.wait_for_service(timeout_sec=timeout):
            self._set_state(None, LEVEL_WARN, f"{planner}/set_parameters not available; {folder} not sent")
            return
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(folder.resolve()))
        future = self._set_params.call_async(
            SetParameters.Request(parameters=[ParameterMsg(name="model_path", value=value)])
        )
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            self._set_state(None, LEVEL_WARN, f"{planner} did not answer set_parameters within {timeout:g} s")
            return
        result = future.result().results[0]
        if result.successful:
            self.get_logger().info(f"{planner}: model_path set to {folder} (hot reload)")
            with self._lock:
                self._status["planner_model_path"] = str(folder)
        else:
            self._set_state(None, LEVEL_WARN, f"{planner} rejected model_path {folder}: {result.reason}")

    # ---- reporting -------------------------------------------------------------------------------

    def _set_state(self, state: str | None, level: int, message: str) -> None:
        with self._lock:
            if state is not None:
                self._status["state"] = state
            self._level, self._message = level, message
        if level == LEVEL_WARN:
            self.get_logger().warning(message)

    def _publish_progress(self, record: dict) -> None:
        if self.context.ok():  # after Ctrl-C the trainer still finishes its step and saves last/
            self._progress_pub.publish(String(data=json.dumps(record, default=float)))

    def _publish_diagnostics(self) -> None:
        with self._lock:
            values = {k: str(v) for k, v in self._status.items()}
            level, message = self._level, self._message
        if self.trainer is not None and self.trainer.state["validations"]:
            v = self.trainer.state["validations"][-1]
            if "PDMS" in v:
                values["val_pdms"] = f"{v['PDMS']:.4f}"
                values["val_pdms_start"] = f"{self.trainer.state['initial']['PDMS']:.4f}"
        now = self.get_clock().now().nanoseconds
        self._diag_pub.publish(
            conv.diagnostic_array(
                now, f"{self.get_name()}: fine-tuning", self.get_fully_qualified_name(), level, message, values
            )
        )


@interrupt_once
def main(args: list[str] | None = None) -> int:
    """``rl_finetune_node [--ros-args ...]``: fine-tune until done (exit 0), Ctrl-C (last/ saved, exit 130)
    or a failure (exit 1; bad parameters or inputs exit 2 with the reason)."""
    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.training.settings import passive_omp

    passive_omp()
    rclpy.init(args=args)
    node = None
    executor = None
    code = 0
    try:
        node = RLFinetuneNode()
        node.build()
        node.start()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        while rclpy.ok() and not (node.done() and node.params["shutdown_when_done"]):
            executor.spin_once(timeout_sec=0.2)
        # Ctrl-C shuts the context down: inside spin_once that raises ExternalShutdownException, between
        # two calls it only ends the loop; both are an interrupted run.
        code = 130 if not rclpy.ok() else 1 if node.error else 0
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 130
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as e:
        print(f"{NODE_NAME}: {e}", file=sys.stderr)
        code = 2
    except Exception as e:
        print(f"{NODE_NAME}: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.stop()
            if code == 130:
                print(f"{NODE_NAME}: stopped; resume point {Path(node.params['out_dir']) / 'last'}", file=sys.stderr)
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
