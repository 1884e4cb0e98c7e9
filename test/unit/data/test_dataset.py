"""DrivingDataset on synthetic bags: indexing, sample contents, the decode cache, rig checks."""

import pickle
import re
from dataclasses import replace

import cv2
import numpy as np
import pytest

from wamdiff_ros.data import dataset as ds
from wamdiff_ros.data.bag import BagWriter
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.rig import CameraSpec, Rig
from wamdiff_ros.types import Observation, SceneTruth, TrajectorySpec

RIG = Rig("small", (CameraSpec("front", 48, 32, 90.0, (1.5, 0.0, 1.6)), CameraSpec("left", 32, 16, 60.0, (0, 0, 1.6))))
TICKS = 50  # 4.9 s per episode at 10 Hz: ticks 0..9 have the 4 s future


def write(path, episodes=("a", "b"), fmt="png", rig=RIG, speed=10.0):
    with BagWriter(path, rig, image_format=fmt) as w:
        k = 0
        for ep in episodes:
            for i, frame in enumerate(synthetic_frames(ep, TICKS, speed=speed)):
                w.write_tick(frame, synthetic_images(rig, k), synthetic_lanes() if i == 0 else None)
                k += 1
    return path


@pytest.fixture
def bag(tmp_path):
    return write(tmp_path / "log.mcap")


@pytest.fixture
def decodes(monkeypatch):
    calls = []
    real = ds.decode_image_msg

    def counting(msg, size=None):
        calls.append(size)
        return real(msg, size)

    monkeypatch.setattr(ds, "decode_image_msg", counting)
    return calls


def test_index_and_sample_contents(bag, tmp_path):
    d = ds.DrivingDataset([bag], cache_dir=tmp_path / "cache", history=3)
    assert len(d) == 2 * 10 and d.rig == RIG and d.skipped == 0
    s = d[12]  # episode b, tick 2
    assert (s.episode, s.source, s.command) == ("b", (0, 52), "straight")
    assert s.instruction.startswith("Follow the road")
    assert list(s.images) == ["front", "left"]
    np.testing.assert_array_equal(s.images["left"], synthetic_images(RIG, 52)["left"])
    np.testing.assert_allclose(s.ego.pose, (2.0, 0.0, 0.0))
    np.testing.assert_allclose(s.future, np.stack([10.0 * d.spec.times, 0 * d.spec.times, 0 * d.spec.times], 1))
    # history at -1.5, -1.0, -0.5 s clamps to the episode's first pose (-2 m) before the start
    np.testing.assert_allclose(s.ego_history, [[-2.0, 0, 0], [-2.0, 0, 0], [-2.0, 0, 0]])
    np.testing.assert_allclose(d[9].ego_history[:, 0], [-9.0, -9.0, -5.0])  # tick 9 at x = 9 m
    assert isinstance(s.scene, SceneTruth) and s.scene.scenario == "highway"
    np.testing.assert_array_equal(s.scene.human_trajectory, s.future)
    assert s.scene.route_lane_ids == [1, 3] and s.scene.agents.poses.shape == (2, 41, 3)
    assert s.scene.traffic_lights[3][0] == 0 and s.scene.traffic_lights[3][-1] == 2  # green now, red later
    assert isinstance(s.language["vqa"], list) and isinstance(s.language["reasoning"], str)
    obs = d.observation(12)
    assert isinstance(obs, Observation) and obs.stamp_ns == s.stamp_ns
    np.testing.assert_array_equal(obs.images["front"], s.images["front"])
    np.testing.assert_array_equal(s.observation().ego_history, obs.ego_history)
    with pytest.raises(IndexError, match="out of range"):
        d[20]


def test_spec_changes_the_index(bag):
    d = ds.DrivingDataset([bag], spec=TrajectorySpec(num_poses=4, dt=0.5), cache_dir=None, history=0)
    assert len(d) == 2 * 30 and d[0].future.shape == (4, 3) and d[0].ego_history.shape == (0, 3)


def test_cache_decodes_once_across_epochs_and_instances(bag, tmp_path, decodes):
    cache = tmp_path / "cache"
    d = ds.DrivingDataset([bag], cache_dir=cache)
    assert len(decodes) == 2 * TICKS * 2  # every image of the bag, once
    for _ in range(2):
        for i in range(len(d)):
            d[i]
    again = ds.DrivingDataset([bag], cache_dir=cache)
    again.observation(3)
    assert len(decodes) == 2 * TICKS * 2
    (entry,) = list(cache.iterdir())
    assert entry.name.endswith(f"-v{ds.CACHE_VERSION}")
    names = sorted(p.name for p in entry.iterdir())
    assert names[:3] == ["has_images.npy", "images_front.npy", "images_left.npy"] and len(names) == 4
    assert names[3].startswith("targets_8x0.5s_") and names[3].endswith(".json")  # no pickle anywhere
    fresh = ds.DrivingDataset([bag], cache_dir=None)
    for i in (0, len(d) - 1):
        cached, direct = again[i], fresh[i]
        np.testing.assert_array_equal(cached.future, direct.future)
        assert cached.language == direct.language
    assert np.load(entry / "images_front.npy", mmap_mode="r").shape == (2 * TICKS, 32, 48, 3)


def test_cache_is_keyed_by_content(tmp_path):
    cache = tmp_path / "cache"
    a = ds.DrivingDataset([write(tmp_path / "a")], cache_dir=cache)
    b = ds.DrivingDataset([write(tmp_path / "b", speed=5.0)], cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
    assert a[0].future[0, 0] == pytest.approx(5.0) and b[0].future[0, 0] == pytest.approx(2.5)


def test_without_cache_decodes_on_every_access(bag, decodes):
    d = ds.DrivingDataset([bag], cache_dir=None)
    assert decodes == []
    d.observation(0)
    d.observation(0)
    assert len(decodes) == 4


def test_jpeg_bag_and_several_bags(tmp_path):
    d = ds.DrivingDataset([write(tmp_path / "j", fmt="jpeg"), write(tmp_path / "k", episodes=("c",))], cache_dir=None)
    assert len(d) == 30 and d[25].source == (1, 5) and d[25].episode == "c"
    diff = np.abs(d[0].images["front"].astype(int) - synthetic_images(RIG, 0)["front"]).mean()
    assert diff < 5


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        (CameraSpec("front", 64, 32, 90.0, (1.5, 0.0, 1.6)), "aspect ratio differs: 48×32 px (1.500)"),
        (CameraSpec("front", 48, 32, 70.0, (1.5, 0.0, 1.6)), "field of view differs: 90.0°"),
    ],
)
def test_rig_mismatch_is_refused_saying_which(bag, front, reason):
    other = Rig("other", (front, RIG.cameras[1]))
    with pytest.raises(ValueError, match=f"recorded rig does not match.*'front': {re.escape(reason)}"):
        ds.DrivingDataset([bag], rig=other, cache_dir=None)


@pytest.mark.parametrize("cache", [False, True])
def test_a_bag_at_twice_the_resolution_with_the_rigs_view_is_resized(tmp_path, cache):
    """Cameras recorded at 2× the rig's size, same fields of view: samples come at the rig's size,
    shrunk with INTER_AREA (the planner node's fit_to_camera), from the cache or decoded each time."""
    big = Rig("big", tuple(replace(c, width=2 * c.width, height=2 * c.height) for c in RIG.cameras))
    bag = write(tmp_path / "big.mcap", episodes=("a",), rig=big, fmt="raw")
    d = ds.DrivingDataset([bag], rig=RIG, cache_dir=tmp_path / "cache" if cache else None)
    assert len(d) == 10
    for name, image in d[3].images.items():
        expected = cv2.resize(
            synthetic_images(big, 3)[name],
            (RIG.camera(name).width, RIG.camera(name).height),
            interpolation=cv2.INTER_AREA,
        )
        np.testing.assert_array_equal(image, expected)


def test_dataset_pickles_without_image_data(bag, tmp_path):
    d = ds.DrivingDataset([bag], cache_dir=tmp_path / "cache")
    d[0]  # opens the memory maps
    blob = pickle.dumps(d)
    assert len(blob) < 2 * TICKS * (48 * 32 + 32 * 16) * 3 / 4
    np.testing.assert_array_equal(pickle.loads(blob)[3].images["front"], d[3].images["front"])


def test_targets_are_cached_and_scenes_optional(bag, tmp_path, monkeypatch):
    calls = []
    real = ds._language
    monkeypatch.setattr(ds, "_language", lambda *a: calls.append(1) or real(*a))
    d = ds.DrivingDataset([bag], cache_dir=tmp_path / "cache", scenes=False)
    assert len(calls) == len(d)
    fast = ds.DrivingDataset([bag], cache_dir=tmp_path / "cache", scenes=False)
    s = fast[4]
    assert len(calls) == len(d) and s.scene is None
    np.testing.assert_array_equal(s.future, d.scene(4).human_trajectory)
    assert s.language == d[4].language


def test_scene_road_is_cropped_around_the_ego(bag):
    d = ds.DrivingDataset([bag], cache_dir=None)
    lane = d.scene(0).lane(1)
    assert lane.centerline[:, 0].max() <= 170.0 < 400.0  # CROP_RADIUS (160 m) around x = 0


def test_past_images_come_from_the_same_episode_nearest_their_age(bag, tmp_path):
    d = ds.DrivingDataset([bag], cache_dir=tmp_path / "cache", past_frame_s=0.5)
    assert d[0].past_images is not None and d.source.past_frame_s == 0.5
    for i, past_k in ((7, 2), (5, 0), (12, 50), (10, 50)):  # episode b starts at bag frame 50
        s = d[i]
        np.testing.assert_array_equal(s.past_images["front"], synthetic_images(RIG, past_k)["front"])
        np.testing.assert_array_equal(s.observation().past_images["left"], synthetic_images(RIG, past_k)["left"])
        np.testing.assert_array_equal(d.observation(i).past_images["front"], s.past_images["front"])
    assert ds.DrivingDataset([bag], cache_dir=tmp_path / "cache")[7].past_images is None
