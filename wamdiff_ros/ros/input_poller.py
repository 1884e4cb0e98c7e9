"""Input subscriptions that the planning thread takes itself, with no executor between the middleware and it.

rclpy's executors hand each message to its callback through Python machinery (the single-threaded
executor rebuilds its wait set over every entity of the node, tasks, callback-group bookkeeping), and
the planning thread then has to be woken: with nine messages a frame, that was most of what the
planner node added around its planner (docs/benchmarks.md, where the time goes). Here the planning thread waits on one
reusable wait set holding only the input subscriptions, takes every queued message and calls the
subscription's own callback, so the executor keeps only timers, services, parameters and /clock.

The subscriptions are ordinary rclpy subscriptions made by ``Node.create_subscription``: topic
resolution, remapping, QoS and graph introspection are unchanged. No executor may take them as well:
they belong to a :class:`PolledGroup`, which the Python executors honour, and they are removed from the
node's list of subscriptions, which is what rclpy's C++ EventsExecutor iterates (it ignores callback
groups). rclpy has no public call for that removal, so it is skipped where the node keeps the list
under another name (Humble, which has no EventsExecutor; the group still keeps its executors off
them). The wait set is rclpy's own ``_rclpy.WaitSet``, used as ``rclpy.wait_for_message`` uses it.

A subscription made elsewhere can be adopted the same way for as long as the poller lives: the node's
/clock under ``use_sim_time``. A simulator or a bag player publishes /clock just before each frame's
inputs; taken on the executor's thread, its callback woke a second thread that held the GIL while the
planning thread took the frame (0.3-0.4 ms more node latency a frame in the node benchmark).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

MAX_TAKE_PER_WAKE = 16
"""Messages taken from one subscription per wake (its QoS depth bounds the queue anyway)."""


class PolledGroup(CallbackGroup):
    """A callback group that no executor runs: its subscriptions are taken by an :class:`InputPoller`."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


@dataclass
class _Polled:
    sub: Any
    callback: Callable[[Any], Any]
    detached: bool
    adopted_from: CallbackGroup | None = None
    """The callback group of an adopted subscription, restored when the poller hands it back."""


class InputPoller:
    """Takes the messages of ``node``'s input subscriptions on the thread that calls :meth:`take`.

    Subscription callbacks return True when the input they queued completes a set worth planning.
    :meth:`take` returns once it has taken every message queued when one did, so that one thread both
    takes inputs and plans, and checks that arrive with a frame (camera_info) apply to that frame.
    """

    def __init__(self, node: Any):
        self.group = PolledGroup()
        self._node = node
        self._polled: list[_Polled] = []
        self._guard = GuardCondition(callback=None, callback_group=None, context=node.context)
        self._wait_set = None

    @property
    def subscriptions(self) -> list[Any]:
        return [p.sub for p in self._polled]

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], Any], qos: Any, **kw):
        """``node.create_subscription`` for this poller (``kw``: its other keyword arguments); call before
        the polling thread starts. Subscriptions are taken in the order they were made."""
        sub = self._node.create_subscription(msg_type, topic, callback, qos, callback_group=self.group, **kw)
        self._polled.append(_Polled(sub, callback, self._detach(sub)))
        self._wait_set = None
        return sub

    def adopt(self, sub: Any, callback: Callable[[Any], Any]) -> None:
        """Take an existing subscription of the node on the polling thread, calling ``callback`` (which
        returns True for a complete set) instead of its own, until :meth:`destroy` hands it back to the
        executor. Adopted subscriptions are taken first (a /clock sets the time the inputs after it are
        judged at). Call before the polling thread starts."""
        self._polled.insert(0, _Polled(sub, callback, self._detach(sub), adopted_from=sub.callback_group))
        sub.callback_group = self.group
        self._wait_set = None
        self._node._wake_executor()  # an EventsExecutor drops the subscription when it looks again

    def _owned(self) -> list | None:
        """The node's list of subscriptions, which the EventsExecutor iterates; None where rclpy keeps it
        under another name (Humble)."""
        owned = getattr(self._node, "_subscriptions", None)
        return owned if isinstance(owned, list) else None

    def _detach(self, sub: Any) -> bool:
        """Take ``sub`` off the node's list of subscriptions; whether it was there."""
        owned = self._owned()
        if owned is None or sub not in owned:
            return False
        owned.remove(sub)
        return True

    def wake(self) -> None:
        """Make a :meth:`take` in progress return now (thread-safe)."""
        self._guard.trigger()

    def destroy(self) -> None:
        """Destroy the subscriptions (adopted ones go back to the executor) and the wake-up guard; call after
        the polling thread stopped."""
        handed_back = False
        for p in self._polled:
            if p.adopted_from is not None:
                p.sub.callback_group = p.adopted_from
                if p.detached:
                    self._owned().append(p.sub)
                handed_back = True
            elif p.detached:
                p.sub.destroy()
            else:
                self._node.destroy_subscription(p.sub)
        self._polled, self._wait_set = [], None
        self._guard.destroy()
        if handed_back:
            self._node._wake_executor()

    def take(self, timeout_s: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait up to ``timeout_s`` for input, taking and dispatching messages as they come.

        Returns True as soon as a callback returned True (a complete set is ready), False on timeout,
        :meth:`wake` or ``stop()``. A callback that raises is the node's bug: it propagates.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready = self._wait(left)
            if ready is None:
                return False
            if self._dispatch(ready):
                return True
        return False

    def _wait(self, timeout_s: float) -> list[_Polled] | None:
        """The subscriptions with queued messages, in taking order; None on wake or timeout."""
        ws = self._wait_set
        if ws is None:
            ws = self._wait_set = _rclpy.WaitSet(len(self._polled), 1, 0, 0, 0, 0, self._node.context.handle)
        ws.clear_entities()
        for p in self._polled:
            ws.add_subscription(p.sub.handle)
        ws.add_guard_condition(self._guard.handle)
        ws.wait(int(timeout_s * 1e9))
        if ws.get_ready_entities("guard_condition"):
            return None
        ready = set(ws.get_ready_entities("subscription"))
        return [p for p in self._polled if p.sub.handle.pointer in ready] or None

    def _dispatch(self, ready: list[_Polled]) -> bool:
        complete = False
        for p in ready:
            sub = p.sub
            for _ in range(MAX_TAKE_PER_WAKE):
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    break
                complete = bool(p.callback(taken[0])) or complete
        return complete
