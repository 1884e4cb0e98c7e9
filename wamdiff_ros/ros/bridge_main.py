"""The process around a simulator bridge node (``sim_bridge_node``, ``carla_bridge_node``): the node's
callbacks (trajectory inbox, parameter services) spin in a background thread while the main thread
drives the simulation, which blocks on those callbacks each tick."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from wamdiff_ros.ros.executors import spin
from wamdiff_ros.ros.path_inbox import Shutdown


def run_bridge(name: str, make_node: Callable[[], Node], drive: Callable[[Node], object], args=None) -> int:
    """Init rclpy with ``args``, build the node with ``make_node()``, spin it in the background and call
    ``drive(node)``; then exit, or keep spinning until shut down where the node's ``shutdown_when_done``
    parameter is false. Returns the exit code: 0, or 1 after an error (printed with ``name``)."""
    rclpy.init(args=args)
    node = executor = spinner = None
    code = 0
    try:
        node = make_node()
        # One callback thread: a MultiThreadedExecutor's dispatch loop costs a core's worth of GIL on a
        # 2-core machine.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=spin, args=(executor, node.context), daemon=True)
        spinner.start()
        drive(node)
        if not node.params["shutdown_when_done"]:
            spinner.join()
    except (KeyboardInterrupt, ExternalShutdownException, Shutdown):
        pass
    except Exception as e:
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
        code = 1
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if spinner is not None:
            spinner.join(timeout=2.0)  # a spin thread left running at exit aborts the process (std::terminate)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
