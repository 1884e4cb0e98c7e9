"""Bag writing and reading: layout, atomicity, stamps, and that a plain rosbags AnyReader decodes
the ground truth from the definitions stored in the MCAP."""

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from wamdiff_ros.data import bag as bagmod
from wamdiff_ros.data.bag import BagReader, BagWriter, bag_paths, resolve_bag
from wamdiff_ros.data.ros_types import decode_image_msg
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.rig import CameraSpec, Rig

RIG = Rig("small", (CameraSpec("front", 48, 32, 90.0, (1.5, 0.0, 1.6)), CameraSpec("rear", 32, 16, 60.0, (0, 0, 1.6))))


def write_bag(path, episodes=(("a", 30), ("b", 20)), rig=RIG, **kw):
    lanes = synthetic_lanes()
    with BagWriter(path, rig, **kw) as w:
        k = 0
        for ep, n in episodes:
            for i, frame in enumerate(synthetic_frames(ep, n)):
                w.write_tick(frame, synthetic_images(rig, k), lanes if i == 0 else None)
                k += 1
    return w


def test_paths():
    assert bag_paths("out/train.mcap") == (Path("out/train"), Path("out/train/train.mcap"))
    assert bag_paths("out/train") == (Path("out/train"), Path("out/train/train.mcap"))
    with pytest.raises(ValueError, match="expected a name"):
        bag_paths("out/..")


def test_layout_and_plain_anyreader(tmp_path):
    w = write_bag(tmp_path / "log.mcap", metadata={"split": "train", "seed": 3})
    assert (w.frames, w.episodes) == (50, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]  # no temporary left behind
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == ["log.mcap", "metadata.yaml"]
    for path in (tmp_path / "log", tmp_path / "log" / "log.mcap"):
        with AnyReader([path]) as reader:  # no typestore: types come from the bag
            types = {c.topic: c.msgtype for c in reader.connections}
            assert types["/wamdiff/truth"] == "wamdiff_msgs/msg/FrameTruth"
            assert types["/cameras/rear/image/compressed"] == "sensor_msgs/msg/CompressedImage"
            assert types["/cameras/front/camera_info"] == "sensor_msgs/msg/CameraInfo"
            assert types["/ego/odom"] == "nav_msgs/msg/Odometry"
            assert types["/clock"] == "rosgraph_msgs/msg/Clock"
            assert types["/ego/command"] == types["/ego/instruction"] == "std_msgs/msg/String"
            truth = [c for c in reader.connections if c.topic in ("/wamdiff/truth", "/wamdiff/map")]
            msgs = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(truth)]
    truths = [m for topic, _, m in msgs if topic == "/wamdiff/truth"]
    maps = [m for topic, _, m in msgs if topic == "/wamdiff/map"]
    assert len(truths) == 50 and [m.episode for m in maps] == ["a", "b"]
    assert list(truths[0].agent_ids) == [10, 11] and truths[0].agent_x[0] == 20.0
    assert [lane.id for lane in maps[0].lanes] == [1, 2, 3]
    log_time = [t for topic, t, _ in msgs if topic == "/wamdiff/truth"]
    assert log_time[0] == 1_000_000_000 and np.all(np.diff(log_time) > 0)


def test_reader_round_trip_and_episode_times(tmp_path):
    write_bag(tmp_path / "log", metadata={"split": "val"})
    with BagReader(tmp_path / "log.mcap") as r:
        assert r.cameras == ["front", "rear"] and r.metadata["split"] == "val"
        assert r.rig() == RIG
        log = r.read_log()
        msgs = list(r.image_messages())
    stamps = [f.stamp_ns for f in log.frames]
    assert stamps[:30] == [1_000_000_000 + 100_000_000 * k for k in range(30)]
    assert stamps[30] == stamps[29] + bagmod.EPISODE_GAP_NS
    original = synthetic_frames("a", 30)[7]
    np.testing.assert_array_equal(log.frames[7].ego.pose, original.ego.pose)
    np.testing.assert_array_equal(log.frames[7].agents.poses, original.agents.poses)
    assert log.frames[7].traffic_lights == original.traffic_lights and log.frames[7].episode == "a"
    assert [lane.lane_id for lane in log.lanes_at(45)] == [1, 2, 3]
    assert len(msgs) == 100 and msgs[0][0] == "front" and msgs[0][1] == 1_000_000_000
    img = decode_image_msg(msgs[2][2], (48, 32))
    ref = synthetic_images(RIG, 1)["front"]
    assert np.abs(img.astype(int) - ref).mean() < 5


def test_png_and_raw_are_lossless(tmp_path):
    for fmt in ("png", "raw"):
        write_bag(tmp_path / fmt, episodes=(("a", 3),), image_format=fmt)
        with BagReader(tmp_path / fmt) as r:
            topic = r.image_topic("rear")
            assert topic.endswith("/compressed") == (fmt == "png")
            _, _, msg = list(r.image_messages(["rear"]))[2]
        np.testing.assert_array_equal(decode_image_msg(msg), synthetic_images(RIG, 2)["rear"])


def test_failure_leaves_nothing_and_existing_bag_is_protected(tmp_path):
    target = tmp_path / "x.mcap"
    with pytest.raises(RuntimeError, match="boom"), BagWriter(target, RIG) as w:
        w.write_tick(synthetic_frames("a", 1)[0], synthetic_images(RIG, 0), synthetic_lanes())
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    write_bag(target, episodes=(("a", 2),))
    before = (tmp_path / "x" / "x.mcap").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        BagWriter(target, RIG)
    write_bag(target, episodes=(("b", 3),), overwrite=True)
    assert (tmp_path / "x" / "x.mcap").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    with BagReader(target) as r:
        assert [f.episode for f in r.read_log().frames] == ["b"] * 3


def test_write_tick_validates(tmp_path):
    frames = synthetic_frames("a", 3)
    images = synthetic_images(RIG, 0)
    with BagWriter(tmp_path / "v", RIG) as w:
        with pytest.raises(ValueError, match="pass its lanes"):
            w.write_tick(frames[0], images)
        with pytest.raises(ValueError, match=r"expected images for cameras \['front', 'rear'\]"):
            w.write_tick(frames[0], {"front": images["front"]}, synthetic_lanes())
        bad = dict(images, rear=np.zeros((10, 10, 3), np.uint8))
        with pytest.raises(ValueError, match=r"expected 32×16 \(rig\), got 10×10"):
            w.write_tick(frames[0], bad, synthetic_lanes())
        w.write_tick(frames[1], images, synthetic_lanes())
        with pytest.raises(ValueError, match="does not increase"):
            w.write_tick(frames[0], images)
    with pytest.raises(ValueError, match="image_format"):
        BagWriter(tmp_path / "w", RIG, image_format="webp")


def test_rig_from_camera_info_for_a_bare_mcap(tmp_path):
    write_bag(tmp_path / "log", episodes=(("a", 2),))
    with BagReader(tmp_path / "log" / "log.mcap") as r:
        assert r.metadata == {}
        rig = r.rig()
    assert rig.mismatch(RIG) is None and rig.cameras[1].fov_deg == pytest.approx(60.0)


def test_not_a_wamdiff_bag(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from wamdiff_ros.data.ros_types import typestore

    with Writer(tmp_path / "other", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection("/chatter", "std_msgs/msg/String", typestore=typestore())
    with pytest.raises(ValueError, match="no /wamdiff/truth"):
        BagReader(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no rosbag2 directory"):
        resolve_bag(tmp_path / "missing.mcap")
