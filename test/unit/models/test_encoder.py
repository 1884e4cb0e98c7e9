"""The scene encoder's past frame: single-frame weights widen to a two-frame stem that computes the same
tokens, the past frame reaches the tokens once its stem weights are trained, the inputs are stacked
current-then-past, and a missing past set is refused by name; a two-frame planner exports and runs on
ONNX Runtime with the same plans as torch."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unit.helpers.runtime import ensure_export, observation
from wamdiff_ros.models.checkpoint import CheckpointError, load_state
from wamdiff_ros.models.config import ConfigError, EncoderConfig, tiny_rig
from wamdiff_ros.models.encoder import SceneEncoder, batch_images, scene_inputs, widen_stems
from wamdiff_ros.planners.base import on_backend
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.config import tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.rig import Rig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RIG = Rig.from_dict(tiny_rig())
ONE = EncoderConfig(stem_channels=4, channels=(8,), history=2)
TWO = dataclasses.replace(ONE, past_frame_s=1.0)


def encoders() -> tuple[SceneEncoder, SceneEncoder]:
    torch.manual_seed(0)
    one, two = SceneEncoder(RIG, ONE, 16).eval(), SceneEncoder(RIG, TWO, 16).eval()
    load_state(two, widen_stems(one.state_dict(), two), "one-frame weights")
    return one, two


def images(n: int, seed: int) -> torch.Tensor:
    cam = RIG.cameras[0]
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, n, cam.height, cam.width, 3), generator=g, dtype=torch.uint8)


def test_widened_one_frame_weights_give_the_same_tokens_whatever_the_past_frame():
    one, two = encoders()
    now, ego = images(2, 0), torch.randn(1, 6 + 4 * 2)
    with torch.no_grad():
        ref = one(now, ego)
        for seed in (1, 2):
            torch.testing.assert_close(two(torch.cat([now, images(2, seed)], 1), ego), ref, atol=1e-5, rtol=1e-5)


def test_the_past_frame_reaches_the_tokens_once_its_stem_weights_are_not_zero():
    _, two = encoders()
    with torch.no_grad():
        two.cnn[0].weight[:, 3:].normal_(std=0.01)
        now, ego = images(2, 0), torch.randn(1, 6 + 4 * 2)
        a, b = two(torch.cat([now, images(2, 1)], 1), ego), two(torch.cat([now, images(2, 2)], 1), ego)
    assert (a - b).abs().max() > 1e-3


def test_weights_that_fit_neither_stem_are_still_refused():
    one, _ = encoders()
    three = SceneEncoder(RIG, dataclasses.replace(ONE, stem_channels=5), 16)
    with pytest.raises(CheckpointError, match="cnn.0.weight"):
        load_state(three, widen_stems(one.state_dict(), three), "x")


def test_scene_inputs_stack_now_then_past_and_name_a_missing_past_set():
    rig = RIG
    obs = observation(rig, 0)
    past = observation(rig, 1).images
    x, _ = scene_inputs(rig, dataclasses.replace(obs, past_images=past), TWO)
    assert x.shape[1] == 2 * len(rig.cameras)
    for i, name in enumerate(rig.names):
        np.testing.assert_array_equal(x[0, i].numpy(), obs.images[name])
        np.testing.assert_array_equal(x[0, len(rig.names) + i].numpy(), past[name])
    with pytest.raises(ValueError, match=r"Observation.past_images: expected cameras"):
        scene_inputs(rig, obs, TWO)
    bad = {n: im[:-1] for n, im in past.items()}
    with pytest.raises(ValueError, match=r"Observation.past_images\['front'\]"):
        scene_inputs(rig, dataclasses.replace(obs, past_images=bad), TWO)
    assert scene_inputs(rig, obs, ONE)[0].shape[1] == len(rig.cameras)  # one frame ignores the past set
    with pytest.raises(ValueError, match=r"Observation.past_images\['front'\]: expected H×W×3 uint8"):
        dataclasses.replace(obs, past_images={"front": np.zeros((4, 4), np.uint8)})


def test_training_batches_stack_each_sample_now_then_past():
    rig = RIG
    samples = [
        SimpleNamespace(images=observation(rig, 2 * i).images, past_images=observation(rig, 2 * i + 1).images)
        for i in range(2)
    ]
    x = batch_images(samples, rig.names, 2)
    assert x.shape[:2] == (2, 2 * len(rig.cameras))
    for b, s in enumerate(samples):
        for i, name in enumerate(rig.names):
            np.testing.assert_array_equal(x[b, i].numpy(), s.images[name])
            np.testing.assert_array_equal(x[b, len(rig.names) + i].numpy(), s.past_images[name])
    assert batch_images(samples, rig.names, 1).shape[1] == len(rig.cameras)


def test_past_frame_age_is_checked():
    with pytest.raises(ConfigError, match="past_frame_s"):
        EncoderConfig(past_frame_s=-0.5)
    assert (ONE.frames, TWO.frames) == (1, 2)


def test_a_two_frame_planner_runs_on_onnxruntime_as_on_torch(tmp_path):
    torch.manual_seed(0)
    net = WamDiffNet(tiny_config(encoder=TWO)).eval()
    with torch.no_grad():
        net.encoder.cnn[0].weight[:, 3:].normal_(std=0.05)
    eager = WamDiffPlanner(net, mode="fast", collect_stats=False)
    assert eager.past_frame_s == 1.0 and eager.describe()["past_frame_s"] == 1.0
    ensure_export(net, tmp_path)
    ort = on_backend(eager, "onnxruntime", export_dir=tmp_path, threads=1)
    obs = observation(eager.rig, 0)
    for seed in (1, 2):
        o = dataclasses.replace(obs, past_images=observation(eager.rig, seed).images)
        a, b = eager.plan(o), ort.plan(o)
        np.testing.assert_array_equal(a.trajectory.poses, b.trajectory.poses)
    with pytest.raises(ValueError, match="past_images"):
        eager.plan(obs)
