"""Bag playback timing (schedule, rate, offset, duration, loop, /clock), remap parsing, header stamps
and raw MCAP read/write — all without rclpy (fake clocks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.data.playback import PlaybackOptions, due_times, header_stamp_ns, run_playback
from wamdiff_ros.data.raw_bag import RawBagReader, RawBagWriter, RawMessage
from wamdiff_ros.data.remap import parse_remaps
from wamdiff_ros.types import EgoState


class FakeClock:
    """Monotonic time that advances only when waited on."""

    def __init__(self):
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def wait(self, dt: float) -> bool:
        self.t += dt
        return False


def messages(n=5, period_s=0.1, start_ns=2_000_000_000, topic="/a"):
    return [
        RawMessage(topic, "std_msgs/msg/String", start_ns + round(k * period_s * 1e9), bytes([k])) for k in range(n)
    ]


def play(msgs, options, clock=None, **kw):
    clock = clock or FakeClock()
    out, ticks = [], []
    stats = run_playback(
        lambda start: [m for m in msgs if m.log_ns >= start],
        msgs[0].log_ns,
        lambda m: out.append((clock.now(), m)),
        options,
        publish_clock=lambda ns: ticks.append((clock.now(), ns)),
        now=clock.now,
        wait=clock.wait,
        **kw,
    )
    return out, ticks, stats, clock


def test_parse_remaps_and_errors():
    assert parse_remaps(["/a:=/b", " /c := /d "]) == {"/a": "/b", "/c": "/d"}
    assert parse_remaps(None) == {}
    for bad, match in (("/a=/b", "FROM:=TO"), (":=/b", "FROM:=TO"), ("/a:=", "FROM:=TO"), ("/a b:=/c", "spaces")):
        with pytest.raises(ValueError, match=match):
            parse_remaps([bad])
    with pytest.raises(ValueError, match="remapped twice"):
        parse_remaps(["/a:=/b", "/a:=/c"])


def test_options_validate_and_choose_topics():
    for kw in ({"rate": 0}, {"rate": float("nan")}, {"clock_hz": -1}, {"start_offset": -0.1}, {"duration": 0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            PlaybackOptions(**kw)
    bag = {"/clock": "rosgraph_msgs/msg/Clock", "/a": "std_msgs/msg/String", "/b": "std_msgs/msg/String"}
    assert PlaybackOptions().played_topics(bag) == bag
    assert "/clock" not in PlaybackOptions(clock=True).played_topics(bag)
    assert PlaybackOptions(topics=["/b"]).played_topics(bag) == {"/b": "std_msgs/msg/String"}
    with pytest.raises(ValueError, match=r"\['/nope'\] not in the bag"):
        PlaybackOptions(topics=["/a", "/nope"]).played_topics(bag)
    with pytest.raises(ValueError, match="not among the played topics"):
        PlaybackOptions(topics=["/a"], remaps={"/b": "/c"}).played_topics(bag)


def test_schedule_keeps_recorded_spacing_scaled_by_rate():
    msgs = messages(5, 0.1)
    assert due_times([m.log_ns for m in msgs], 2.0) == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
    for rate in (1.0, 2.0, 0.5):
        out, _, stats, _ = play(msgs, PlaybackOptions(rate=rate))
        times = np.array([t for t, _ in out])
        assert [m.data for _, m in out] == [bytes([k]) for k in range(5)]
        np.testing.assert_allclose(np.diff(times), 0.1 / rate, atol=1e-9)
        assert stats.messages == 5 and stats.passes == 1 and not stats.stopped


def test_start_offset_duration_and_delay():
    msgs = messages(10, 0.1)
    out, _, _, _ = play(msgs, PlaybackOptions(start_offset=0.3, duration=0.45, delay=1.0))
    assert [m.data[0] for _, m in out] == [3, 4, 5, 6, 7]
    assert out[0][0] == pytest.approx(101.0)  # after the delay, the first played message is due at once


def test_clock_ticks_at_frequency_with_bag_time():
    msgs = messages(11, 0.1)  # 1 s of bag
    out, ticks, stats, _ = play(msgs, PlaybackOptions(rate=2.0, clock=True, clock_hz=20.0), clock_tail_s=0.1)
    wall = np.array([t for t, _ in ticks])
    bag = np.array([ns for _, ns in ticks])
    assert ticks[0][1] == msgs[0].log_ns  # the clock starts at the bag's first message
    np.testing.assert_allclose(np.diff(wall), 0.05, atol=1e-9)  # 20 Hz of wall time
    np.testing.assert_allclose(np.diff(bag), 0.1e9, atol=2)  # bag time runs twice as fast
    assert wall[-1] >= out[-1][0] + 0.1 - 1e-9  # the tail keeps it running after the last message
    assert stats.clock_messages == len(ticks)


def test_loop_replays_until_stopped():
    msgs = messages(3, 0.1)
    stop = threading.Event()
    seen = []

    def publish(m):
        seen.append(m.data[0])
        if len(seen) == 7:
            stop.set()

    clock = FakeClock()
    stats = run_playback(
        lambda start: msgs,
        msgs[0].log_ns,
        publish,
        PlaybackOptions(loop=True),
        stop=stop,
        now=clock.now,
        wait=clock.wait,
    )
    assert seen[:7] == [0, 1, 2, 0, 1, 2, 0]
    assert stats.passes == 2 and stats.stopped


def test_stop_interrupts_waiting():
    stop = threading.Event()
    stop.set()
    out = []
    stats = run_playback(lambda s: messages(3, 10.0), messages()[0].log_ns, out.append, PlaybackOptions(), stop=stop)
    assert out == [] and stats.stopped


def test_header_stamp_of_serialized_messages():
    store = rt.typestore()
    odom = store.serialize_cdr(rt.odometry(EgoState(pose=[1.0, 2.0, 0.3]), 12_250_000_000), "nav_msgs/msg/Odometry")
    assert header_stamp_ns(bytes(odom)) == 12_250_000_000
    assert header_stamp_ns(b"\x00\x01") is None
    assert header_stamp_ns(b"\x07\x07" + bytes(20)) is None


def test_raw_bag_roundtrip_is_atomic(tmp_path):
    store = rt.typestore()
    data = [bytes(store.serialize_cdr(rt.string(f"m{k}"), "std_msgs/msg/String")) for k in range(4)]
    writer = RawBagWriter(tmp_path / "rec.mcap")
    writer.add_topic("/chatter", "std_msgs/msg/String")
    with pytest.raises(ValueError, match="not in the ROS 2 typestore"):
        writer.add_topic("/x", "nope_msgs/msg/Nope")
    with pytest.raises(KeyError, match="add_topic first"):
        writer.write("/other", 1, data[0])
    for k, d in enumerate(data):
        writer.write("/chatter", 1_000_000_000 + k * 100_000_000, d)
    assert not (tmp_path / "rec").exists()  # nothing visible until closed
    assert writer.close() == tmp_path / "rec"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]
    with AnyReader([tmp_path / "rec"]) as reader:
        got = [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()]
    assert got == ["m0", "m1", "m2", "m3"]
    with RawBagReader(tmp_path / "rec" / "rec.mcap") as reader:
        assert reader.topics == {"/chatter": "std_msgs/msg/String"} and reader.counts == {"/chatter": 4}
        assert [m.data for m in reader.messages(start_ns=1_150_000_000)] == data[2:]
        with pytest.raises(ValueError, match="no topic"):
            list(reader.messages(["/nope"]))
    aborted = RawBagWriter(tmp_path / "gone")
    aborted.add_topic("/chatter", "std_msgs/msg/String")
    aborted.write("/chatter", 1, data[0])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]
    with pytest.raises(FileExistsError):
        RawBagWriter(tmp_path / "rec")
