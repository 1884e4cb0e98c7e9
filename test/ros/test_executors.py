"""The executors planner_node can spin: choice, fallback where rclpy lacks one, and spin() ending with
its context without busy-waiting meanwhile."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from wamdiff_ros.ros import executors
from wamdiff_ros.ros.executors import EXECUTORS, make_executor, spin

pytestmark = pytest.mark.ros


def test_single_threaded_is_rclpys(ros_context):
    ex, kind, why = make_executor("single_threaded", ros_context)
    assert isinstance(ex, SingleThreadedExecutor) and kind == "single_threaded" and why is None


def test_unknown_kind_is_rejected_naming_the_choices(ros_context):
    with pytest.raises(ValueError, match="executor: expected one of .*single_threaded.*got 'multi'"):
        make_executor("multi", ros_context)


def test_events_falls_back_with_a_reason_where_rclpy_has_none(ros_context, monkeypatch):
    monkeypatch.setattr(executors, "events_executor_class", lambda: None)
    ex, kind, why = make_executor("events", ros_context)
    assert isinstance(ex, SingleThreadedExecutor) and kind == "single_threaded"
    assert "EventsExecutor" in why and "Jazzy" in why


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # ends by returning, not raising
def test_spin_idles_and_ends_with_its_context(ros_context, kind):
    if kind == "events" and executors.events_executor_class() is None:
        pytest.skip("this rclpy has no EventsExecutor (Jazzy or later)")
    node = Node("idle", context=ros_context)
    ticks = []
    node.create_timer(0.05, lambda: ticks.append(time.monotonic()))
    ex, used, _ = make_executor(kind, ros_context)
    assert used == kind
    ex.add_node(node)
    thread = threading.Thread(target=spin, args=(ex, ros_context), daemon=True)
    cpu0 = time.process_time()
    thread.start()
    time.sleep(1.0)
    cpu = time.process_time() - cpu0
    rclpy.try_shutdown(context=ros_context)
    thread.join(timeout=5.0)
    assert not thread.is_alive(), "spin() kept running after its context shut down"
    assert len(ticks) >= 10, "the executor did not run the timer"
    # A busy-waiting spin (EventsExecutor.spin() in kilted) burns a whole core: ~1 s of CPU in this second.
    assert cpu < 0.5, f"spin() used {cpu:.2f} s of CPU in 1 s with one 20 Hz timer"
    node.destroy_node()
