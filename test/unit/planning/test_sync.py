"""Approximate-time sync: newest complete set wins, slop respected, stamps going backwards reset."""

import threading
from collections import deque

import numpy as np
import pytest

from wamdiff_ros.planning.sync import ApproxTimeSync, Stamped, _closest


def ns(t: float) -> int:
    return round(t * 1e9)


def make(slop=0.05):
    return ApproxTimeSync(["a", "b", "odom"], slop, key_streams=["a", "b"])


def push_all(sync, stamps: dict):
    for stream, t in stamps.items():
        sync.push(stream, ns(t), f"{stream}@{t}")


def test_incomplete_set_is_none():
    s = make()
    push_all(s, {"a": 1.0, "odom": 1.0})
    assert s.newest() is None


def test_newest_complete_set_wins():
    s = make()
    for t in (1.0, 1.1, 1.2):
        push_all(s, {"a": t, "b": t, "odom": t + 0.01})
    push_all(s, {"a": 1.3})  # b and odom for 1.3 not here yet
    got = s.newest()
    assert got is not None
    assert got.key_ns == ns(1.2)
    assert {k: v.payload for k, v in got.items.items()} == {"a": "a@1.2", "b": "b@1.2", "odom": "odom@1.21"}


def test_slop_is_respected():
    s = make(slop=0.02)
    push_all(s, {"a": 1.0, "b": 1.03, "odom": 1.0})
    assert s.newest() is None
    s.slop = 0.05
    got = s.newest()
    assert got is not None and got.spread == pytest.approx(0.03)


def test_odometry_closest_to_the_images_is_chosen():
    s = make(slop=0.05)
    for t in (0.96, 0.98, 1.0, 1.02, 1.04):
        s.push("odom", ns(t), t)
    push_all(s, {"a": 1.0, "b": 1.0})
    assert s.newest().items["odom"].stamp_ns == ns(1.0)


def test_take_newest_marks_consumed_and_waits_for_newer_images():
    s = make()
    push_all(s, {"a": 1.0, "b": 1.0, "odom": 1.0})
    assert s.take_newest().key_ns == ns(1.0)
    assert s.take_newest() is None
    s.push("odom", ns(1.02), "o")  # newer odometry alone is not a new set
    assert s.take_newest() is None
    push_all(s, {"a": 1.1, "b": 1.1, "odom": 1.1})
    assert s.take_newest().key_ns == ns(1.1)


def test_stamp_going_backwards_resets_everything():
    s = make()
    push_all(s, {"a": 5.0, "b": 5.0, "odom": 5.0})
    assert s.take_newest() is not None
    assert s.push("a", ns(1.0), "a@1") is True
    assert s.resets == 1
    assert s.newest() is None  # b and odom buffers were cleared: no mixing across the jump
    push_all(s, {"b": 1.0, "odom": 1.0})
    got = s.take_newest()
    assert got is not None and got.key_ns == ns(1.0)  # the consumed mark was reset too


def test_duplicate_stamp_replaces():
    s = make()
    push_all(s, {"a": 1.0, "b": 1.0, "odom": 1.0})
    s.push("a", ns(1.0), "a-new")
    assert s.newest().items["a"].payload == "a-new"
    assert s.resets == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="unique"):
        ApproxTimeSync(["a", "a"], 0.1)
    with pytest.raises(ValueError, match="key_streams"):
        ApproxTimeSync(["a"], 0.1, key_streams=["x"])
    with pytest.raises(ValueError, match="slop"):
        ApproxTimeSync(["a"], -1.0)
    with pytest.raises(KeyError, match="unknown stream"):
        ApproxTimeSync(["a"], 0.1).push("z", 0, None)


def test_concurrent_push_and_take():
    s = make(slop=0.0)
    taken = []

    def producer():
        for k in range(300):
            push_all(s, {"a": k * 0.1, "b": k * 0.1, "odom": k * 0.1})

    th = threading.Thread(target=producer)
    th.start()
    while th.is_alive():
        got = s.take_newest()
        if got is not None:
            taken.append(got.key_ns)
    got = s.take_newest()
    if got is not None:
        taken.append(got.key_ns)
    th.join()
    assert taken == sorted(taken) and len(set(taken)) == len(taken)
    assert taken[-1] == ns(29.9)
    assert s.resets == 0


def test_closest_is_the_nearest_stamp_and_the_newer_on_a_tie():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        stamps = np.unique(rng.integers(0, 200, rng.integers(1, 11)))
        buf = deque(Stamped(int(x), None) for x in stamps)
        t = int(rng.integers(-50, 250))
        best = _closest(buf, t)
        d = abs(best.stamp_ns - t)
        near = [d < abs(m.stamp_ns - t) or (d == abs(m.stamp_ns - t) and m.stamp_ns <= best.stamp_ns) for m in buf]
        assert all(near), (stamps, t)
    tie = deque(Stamped(x, None) for x in (100, 150))
    assert _closest(tie, 125).stamp_ns == 150


EPOCH_NS = 1_765_000_000_123_456_789


def test_epoch_stamps_are_keys_to_the_nanosecond():
    """Wall-clock stamps one nanosecond apart are different sets, and a set's key is its exact stamp."""
    s = make(slop=0.0)
    for t in (EPOCH_NS, EPOCH_NS + 1):
        for stream in ("a", "b", "odom"):
            s.push(stream, t, t)
        assert s.take_newest().key_ns == t
    assert s.take_newest() is None


def test_float_stamps_are_refused():
    with pytest.raises(ValueError, match="integer nanoseconds"):
        make().push("a", 1.5, None)
