"""The executor a node spins: rclpy's SingleThreadedExecutor, or its C++ EventsExecutor where rclpy has one.

``events`` hands ready messages to the Python callbacks from C++ instead of rebuilding a wait set in
Python after every callback; on the planner node, whose inputs the planning thread takes itself, that
leaves /clock, timers and services, and it wakes the planning thread sooner after a frame under
simulated time (docs/deployment.md, Executor). It lives in ``rclpy.experimental`` (Jazzy and later); Humble has
none, so asking for it there falls back to ``single_threaded`` with a reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rclpy is imported where it is used: the CLI reads EXECUTORS without it
    from rclpy.context import Context
    from rclpy.executors import Executor

EXECUTORS = ("single_threaded", "events")
SPIN_TIMEOUT_S = 0.5


def events_executor_class():
    """rclpy's EventsExecutor factory, or None where this rclpy has none (Humble, Iron)."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def make_executor(kind: str, context: Context | None = None) -> tuple[Executor, str, str | None]:
    """``(executor, kind used, why it differs from kind or None)`` for ``kind`` in :data:`EXECUTORS`."""
    from rclpy.executors import SingleThreadedExecutor

    if kind not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {kind!r}")
    if kind == "events":
        factory = events_executor_class()
        if factory is not None:
            return factory(context=context), "events", None
        why = (
            "executor 'events': this rclpy has no rclpy.experimental.EventsExecutor (Jazzy or later); "
            "using single_threaded"
        )
        return SingleThreadedExecutor(context=context), "single_threaded", why
    return SingleThreadedExecutor(context=context), "single_threaded", None


def spin(executor: Executor, context: Context | None = None) -> None:
    """Run ``executor`` until its context shuts down, then return.

    The EventsExecutor's own ``spin()`` busy-waits a whole core with no work in some rclpy releases
    (kilted among them), while its ``spin_once`` blocks until work or the timeout, so both kinds are spun that way.
    A context shut down (a signal) while ``spin_once`` waits raises ``ExternalShutdownException`` there,
    an executor shut down (by the thread that owns it) ``ShutdownException``; both are this function's
    normal end, not an error, also in a background thread.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, ShutdownException

    context = context or rclpy.get_default_context()
    try:
        while context.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (ExternalShutdownException, ShutdownException):
        return
