"""Bags as cars record them replay: raw bgr8 at twice the rig's resolution, sqlite3 storage with Autoware
topic names (remapped, or named in the rig), image_transport format strings, NaN odometry covariances.

Each kind is a synthetic wamdiff bag (BagWriter) rewritten message by message with rosbags, as a
recorder on a car would have stored it, then replayed by ``wamdiff replay`` with a constant-velocity
checkpoint on the rig.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from wamdiff_ros.cli import main as cli
from wamdiff_ros.data import images as imgs
from wamdiff_ros.data import ros_types as rt
from wamdiff_ros.data.bag import BagReader, BagWriter
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import CameraSpec, Rig

RIG = Rig("small", (CameraSpec("front", 48, 32, 90.0, (1.5, 0.0, 1.6)), CameraSpec("left", 32, 16, 60.0, (0, 0, 1.6))))
TICKS = 50  # ticks 0..9 have a 4 s future
AUTOWARE = {
    "odom": "/localization/odometry",
    "image": "/sensing/camera/{}/image_raw",
    "info": "/sensing/camera/{}/camera_info",
}


def source_bag(path, rig, fmt):
    with BagWriter(path, rig, image_format=fmt) as w:
        for k, frame in enumerate(synthetic_frames("a", TICKS)):
            w.write_tick(frame, synthetic_images(rig, k), synthetic_lanes() if k == 0 else None)
    return w.bag_dir


def rewrite(src, dst, storage=StoragePlugin.MCAP, rename=None, change=None):
    """``src`` written again to ``dst`` with ``storage``: topics renamed by ``rename`` (old -> new), each
    deserialised message passed through ``change(topic, msg)`` (returns the message to write)."""
    store, rename = rt.typestore(), rename or {}
    with AnyReader([src]) as reader, Writer(dst, version=9, storage_plugin=storage) as writer:
        conns = {}
        for conn in reader.connections:
            topic = rename.get(conn.topic, conn.topic)
            conns[conn.topic] = writer.add_connection(topic, conn.msgtype, typestore=store)
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if change is not None:
                msg = change(conn.topic, msg)
            writer.write(conns[conn.topic], t, store.serialize_cdr(msg, conn.msgtype))
    return dst


def to_bgr8(topic, msg):
    if topic.endswith("/image"):
        image = imgs.decode_raw(msg.data, msg.width, msg.height, msg.encoding, msg.step)
        data, _, _, step = imgs.encode_raw(image, "bgr8")
        msg.encoding, msg.step, msg.data = "bgr8", step, np.frombuffer(data, np.uint8)
    return msg


def transport_formats(topic, msg):
    if topic == "/cameras/front/image/compressed":
        msg.format = "bgr8; jpeg compressed bgr8"
    return msg


def nan_covariance(topic, msg):
    if topic == "/ego/odom":
        msg.pose.covariance = np.full(36, np.nan)
        msg.twist.covariance = np.full(36, np.nan)
    return msg


def autoware_names(rig):
    out = {"/ego/odom": AUTOWARE["odom"]}
    for c in rig.names:
        out[f"/cameras/{c}/image"] = AUTOWARE["image"].format(c)
        out[f"/cameras/{c}/camera_info"] = AUTOWARE["info"].format(c)
    return out


def make_bag(kind, tmp_path):
    """``(bag, remap arguments)`` of a bag kind."""
    out = tmp_path / kind
    if kind == "raw_bgr8_2x":
        big = Rig("big", tuple(replace(c, width=2 * c.width, height=2 * c.height) for c in RIG.cameras))
        return rewrite(source_bag(tmp_path / "src", big, "raw"), out, change=to_bgr8), []
    if kind in ("sqlite3_autoware_rgb8", "sqlite3_autoware_rig_topics"):
        names = autoware_names(RIG)
        bag = rewrite(source_bag(tmp_path / "src", RIG, "raw"), out, StoragePlugin.SQLITE3, rename=names)
        return bag, [] if kind.endswith("rig_topics") else [f"{new}:={old}" for old, new in names.items()]
    if kind == "compressed_transport_format":
        return rewrite(source_bag(tmp_path / "src", RIG, "jpeg"), out, change=transport_formats), []
    if kind == "nan_covariance":
        return rewrite(source_bag(tmp_path / "src", RIG, "png"), out, change=nan_covariance), []
    raise ValueError(kind)


def checkpoint(tmp_path, rig):
    return ConstantVelocityPlanner(rig).save(tmp_path / "cv")


def replay(bag, model, out, remaps=()):
    argv = ["replay", str(bag), "--model", str(model), "--out", str(out), "--plot-every", "0", "--no-cache"]
    return cli(argv + (["--remap", *remaps] if remaps else []))


@pytest.mark.parametrize(
    "kind",
    [
        "raw_bgr8_2x",
        "sqlite3_autoware_rgb8",
        "sqlite3_autoware_rig_topics",
        "compressed_transport_format",
        "nan_covariance",
    ],
)
def test_bag_kind_replays(kind, tmp_path):
    bag, remaps = make_bag(kind, tmp_path)
    rig = RIG
    if kind == "sqlite3_autoware_rig_topics":
        rig = Rig(
            "autoware",
            tuple(
                replace(
                    c, image_topic=AUTOWARE["image"].format(c.name), camera_info_topic=AUTOWARE["info"].format(c.name)
                )
                for c in RIG.cameras
            ),
        )
    assert replay(bag, checkpoint(tmp_path, rig), tmp_path / "out", remaps) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["samples"] == 10 and report["aggregate"]["frames"] == 10
    assert report["aggregate"]["PDMS"] > 0.5  # constant velocity on a straight road
    with BagReader(bag, {new: old for new, old in (r.split(":=") for r in remaps)}) as reader:
        suffix = ".db3" if kind.startswith("sqlite3") else ".mcap"
        assert [f.suffix for f in reader.storage_files] == [suffix]  # what the dataset cache hashes
    if kind == "nan_covariance":
        with AnyReader([bag]) as reader:
            conn = next(c for c in reader.connections if c.topic == "/ego/odom")
            msg = reader.deserialize(next(reader.messages(connections=[conn]))[2], conn.msgtype)
        assert np.isnan(msg.pose.covariance).all() and rt.ego_from_odometry(msg).is_finite()


def test_an_unmapped_bag_names_the_topics_looked_for_and_those_it_has(tmp_path, capsys):
    bag, _ = make_bag("sqlite3_autoware_rgb8", tmp_path)
    assert replay(bag, checkpoint(tmp_path, RIG), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "camera 'front': no image topic: looked for /cameras/front/image/compressed, /cameras/front/image" in err
    assert "the bag has " in err and "/sensing/camera/front/image_raw" in err and "--remap" in err


def test_remap_rules_are_checked(tmp_path, capsys):
    bag, _ = make_bag("compressed_transport_format", tmp_path)
    assert replay(bag, checkpoint(tmp_path, RIG), tmp_path / "out", ["/a"]) == 2
    assert "remap '/a': expected FROM:=TO" in capsys.readouterr().err
    names = ["/cameras/front/image/compressed:=/x", "/cameras/left/image/compressed:=/x"]
    assert replay(bag, checkpoint(tmp_path, RIG), tmp_path / "out", names) == 2
    assert "would both be read as /x" in capsys.readouterr().err


def test_bench_node_reads_an_autoware_sqlite3_bag_through_the_remap(tmp_path):
    """``wamdiff bench node --remap``: its offline frames (and the topics it plays) come through the same rules."""
    from wamdiff_ros.bench import node as node_bench
    from wamdiff_ros.data.raw_bag import RawBagReader
    from wamdiff_ros.data.remap import parse_remaps

    bag, remaps = make_bag("sqlite3_autoware_rgb8", tmp_path)
    with RawBagReader(bag, parse_remaps(remaps)) as reader:
        assert node_bench.image_topics(reader.topics, RIG) == {c: f"/cameras/{c}/image" for c in RIG.names}
        obs, hz = node_bench.bag_frames(reader, RIG, history=4, dt=0.5, max_frames=5)
    assert len(obs) == 5 and hz == pytest.approx(10.0) and obs[0].images["front"].shape == (32, 48, 3)
    with (
        RawBagReader(bag) as reader,
        pytest.raises(ValueError, match="looked for /cameras/front/image/compressed, /cameras/front/image; the bag"),
    ):
        node_bench.image_topics(reader.topics, RIG)


def test_bench_node_fits_cameras_at_twice_the_resolution_as_the_node_does(tmp_path):
    from wamdiff_ros.bench import node as node_bench
    from wamdiff_ros.data.raw_bag import RawBagReader

    bag, _ = make_bag("raw_bgr8_2x", tmp_path)
    with RawBagReader(bag) as reader:
        obs, _ = node_bench.bag_frames(reader, RIG, history=0, dt=0.5, max_frames=3)
    assert [o.images["left"].shape for o in obs] == [(16, 32, 3)] * 3
