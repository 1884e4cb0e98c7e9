"""End to end: `wamdiff collect` drives the expert in the world, writes a bag; a plain rosbags
AnyReader decodes its ground truth, and DrivingDataset turns it into samples."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from wamdiff_ros.cli import main
from wamdiff_ros.paths import config_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collect")
    short = yaml.safe_load(config_path("scenarios", "highway_sparse.yaml").read_text())
    short["duration"] = 6.0  # 61 ticks: 21 with a full 4 s future
    (tmp / "short_highway.yaml").write_text(yaml.safe_dump(short))
    argv = ["collect", "--split", "val", "--episodes", "1", "--out", str(tmp / "run.mcap"), "--seed", "2"]
    argv += ["--scenarios", str(tmp / "short_highway.yaml"), "--json", str(tmp / "stats.json")]
    rc = main(argv)
    assert rc == 0
    return tmp / "run"


def test_plain_anyreader_decodes_truth(bag):
    from rosbags.highlevel import AnyReader

    assert sorted(p.name for p in bag.iterdir()) == ["metadata.yaml", "run.mcap"]
    assert [p.name for p in bag.parent.iterdir() if p.name.startswith(".")] == []
    with AnyReader([bag / "run.mcap"]) as reader:
        conns = {c.topic: c for c in reader.connections}
        truth = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages([conns["/wamdiff/truth"]])]
        odom = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages([conns["/ego/odom"]])]
        (road,) = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages([conns["/wamdiff/map"]])]
        assert {"/cameras/front/image/compressed", "/cameras/front/camera_info", "/clock"} <= set(conns)
    assert len(truth) == len(odom) == 61
    assert truth[0].episode == "short_highway-10002" and truth[0].scenario == "highway"
    assert len(road.lanes) >= 4 and set(truth[0].route_lane_ids) <= {lane.id for lane in road.lanes}
    assert len(truth[0].agent_ids) > 0
    np.testing.assert_allclose([o.pose.pose.position.x for o in odom], [t.x for t in truth])
    speeds = np.array([t.vx for t in truth])
    assert speeds.mean() > 5.0  # the expert drives


def test_dataset_samples(bag, tmp_path):
    from wamdiff_ros.data.dataset import DrivingDataset

    d = DrivingDataset([Path(str(bag) + ".mcap")], cache_dir=tmp_path / "cache")
    assert len(d) == 21 and d.rig.names == ["front", "front_left", "front_right"]
    s = d[0]
    assert {k: v.shape for k, v in s.images.items()} == {n: (128, 256, 3) for n in d.rig.names}
    assert s.images["front"].std() > 10  # a rendered scene, not a blank frame
    assert s.future.shape == (8, 3) and np.all(np.diff(s.future[:, 0]) > 0)
    nxt = d.bags[0].log.frames[5].ego.pose
    from wamdiff_ros.geometry import relative

    np.testing.assert_allclose(s.future[0], relative(s.ego.pose, nxt), atol=1e-9)
    assert s.scene.agents.poses.shape[1] == 41 and s.language["vqa"]
    assert d.observation(20).images["front_left"].dtype == np.uint8


def test_stats(bag):
    import json

    stats = json.loads((bag.parent / "stats.json").read_text())
    assert stats["frames"] == 61 and stats["episodes"] == 1 and stats["frames_per_s"] > 0
    assert 0 < stats["mcap_mb"] < 50
