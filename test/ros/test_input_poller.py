"""The planner node's input path: subscriptions the planning thread takes itself and no executor touches."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from wamdiff_ros.ros import executors
from wamdiff_ros.ros.input_poller import InputPoller

pytestmark = pytest.mark.ros

KINDS = ("single_threaded", "events", "multi_threaded")


def spun(node, kind, context):
    """``node`` spun by an executor of ``kind`` in a background thread until the context shuts down."""
    if kind == "multi_threaded":
        ex = MultiThreadedExecutor(num_threads=2, context=context)
    else:
        if kind == "events" and executors.events_executor_class() is None:
            pytest.skip("this rclpy has no EventsExecutor (Jazzy or later)")
        ex, used, _ = executors.make_executor(kind, context)
        assert used == kind
    ex.add_node(node)
    thread = threading.Thread(target=executors.spin, args=(ex, context), daemon=True)
    thread.start()
    return thread


def wait_for_match(pub, timeout=5.0):
    deadline = time.monotonic() + timeout
    while pub.get_subscription_count() == 0:
        assert time.monotonic() < deadline, "the subscription never matched the publisher"
        time.sleep(0.02)


class Recorder:
    """A callback that records (thread, text) and says True (a complete set) for texts in ``completes``."""

    def __init__(self, completes=()):
        self.seen: list[tuple[str, str]] = []
        self.completes = set(completes)

    def __call__(self, msg):
        self.seen.append((threading.current_thread().name, msg.data))
        return msg.data in self.completes

    @property
    def texts(self):
        return [t for _, t in self.seen]


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_polling_thread_takes_the_messages_whatever_the_executor(ros_context, kind):
    node = Node("poller_test", context=ros_context)
    poller = InputPoller(node)
    rec = Recorder(completes={"2"})
    poller.subscribe(String, "/poller_test/in", rec, 10)
    pub = node.create_publisher(String, "/poller_test/in", 10)
    thread = spun(node, kind, ros_context)
    wait_for_match(pub)
    for i in range(3):
        pub.publish(String(data=str(i)))
    time.sleep(0.3)
    assert rec.seen == [], f"the {kind} executor took a polled message"
    assert poller.take(2.0) is True
    assert rec.texts == ["0", "1", "2"]
    assert {name for name, _ in rec.seen} == {threading.current_thread().name}
    poller.destroy()
    rclpy.try_shutdown(context=ros_context)
    thread.join(timeout=5.0)
    node.destroy_node()


def test_take_ends_on_timeout_wake_and_stop(ros_context):
    node = Node("poller_wake", context=ros_context)
    poller = InputPoller(node)
    poller.subscribe(String, "/poller_wake/in", Recorder(), 10)
    t0 = time.monotonic()
    assert poller.take(0.2) is False
    assert 0.18 <= time.monotonic() - t0 < 2.0
    threading.Timer(0.2, poller.wake).start()
    t0 = time.monotonic()
    assert poller.take(10.0) is False
    assert time.monotonic() - t0 < 5.0, "wake() did not end the take"
    t0 = time.monotonic()
    assert poller.take(10.0, stop=lambda: True) is False
    assert time.monotonic() - t0 < 1.0
    poller.destroy()
    node.destroy_node()


def test_a_take_handles_every_message_queued_with_the_one_that_completes_a_set(ros_context):
    node = Node("poller_all", context=ros_context)
    poller = InputPoller(node)
    image, info = Recorder(completes={"frame"}), Recorder()
    poller.subscribe(String, "/poller_all/image", image, 10)  # made first, taken first
    poller.subscribe(String, "/poller_all/info", info, 10)
    pubs = [node.create_publisher(String, f"/poller_all/{t}", 10) for t in ("image", "info")]
    for pub in pubs:
        wait_for_match(pub)
    pubs[0].publish(String(data="frame"))
    pubs[1].publish(String(data="info"))
    time.sleep(0.2)  # both queued before the take
    assert poller.take(2.0) is True
    assert image.texts == ["frame"] and info.texts == ["info"], "a message queued with the frame was left for later"
    poller.destroy()
    node.destroy_node()


def test_destroy_leaves_the_graph_and_the_node(ros_context):
    node = Node("poller_destroy", context=ros_context)
    poller = InputPoller(node)
    sub = poller.subscribe(String, "/poller_destroy/in", Recorder(), 10)
    assert poller.subscriptions == [sub]
    assert sub not in list(node.subscriptions), "executors iterating the node's subscriptions would take it"
    pub = node.create_publisher(String, "/poller_destroy/in", 10)
    wait_for_match(pub)
    poller.destroy()
    deadline = time.monotonic() + 5.0
    while pub.get_subscription_count() > 0:
        assert time.monotonic() < deadline, "the subscription stayed in the graph after destroy()"
        time.sleep(0.02)
    assert poller.subscriptions == []
    node.destroy_node()


@pytest.mark.parametrize("kind", KINDS)
def test_an_adopted_subscription_is_taken_by_the_poller_first_then_handed_back(ros_context, kind):
    """The executor runs a subscription until the poller adopts it (the planner node's /clock), the
    poller then takes it ahead of its own with the callback it was given, and after destroy() the
    executor runs it again."""
    node = Node("poller_adopt", context=ros_context)
    own = Recorder()
    adopted = node.create_subscription(String, "/poller_adopt/clock", own, 10)
    pub = node.create_publisher(String, "/poller_adopt/clock", 10)
    thread = spun(node, kind, ros_context)
    wait_for_match(pub)
    pub.publish(String(data="before"))
    deadline = time.monotonic() + 5.0
    while own.texts != ["before"]:
        assert time.monotonic() < deadline, f"the {kind} executor never ran the subscription"
        time.sleep(0.02)

    poller = InputPoller(node)
    order: list[str] = []
    poller.subscribe(String, "/poller_adopt/in", lambda m: order.append("input") or True, 10)
    polled = Recorder()
    poller.adopt(adopted, lambda m: order.append("adopted") or polled(m))
    time.sleep(0.3)  # an EventsExecutor looks at the node again when woken
    in_pub = node.create_publisher(String, "/poller_adopt/in", 10)
    wait_for_match(in_pub)
    in_pub.publish(String(data="frame"))
    pub.publish(String(data="during"))
    time.sleep(0.3)
    assert own.texts == ["before"], f"the {kind} executor still ran the adopted subscription"
    assert poller.take(2.0) is True
    assert polled.texts == ["during"] and order == ["adopted", "input"]
    assert {name for name, _ in polled.seen} == {threading.current_thread().name}

    poller.destroy()
    assert adopted.handle.pointer, "destroy() destroyed a subscription it had only adopted"
    time.sleep(0.3)
    pub.publish(String(data="after"))
    deadline = time.monotonic() + 5.0
    while own.texts != ["before", "after"]:
        assert time.monotonic() < deadline, f"the {kind} executor did not get the subscription back: {own.texts}"
        time.sleep(0.02)
    rclpy.try_shutdown(context=ros_context)
    thread.join(timeout=5.0)
    node.destroy_node()
