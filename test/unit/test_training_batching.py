"""WAM-Diff's multi-task collation: batch shapes, answer masks and presence flags per task, the complexity
label, the task-mix fallbacks, reproducible draws, and the training settings file."""

import numpy as np
import pytest
import torch
from _training_helpers import tiny_cfg, tiny_dataset, write_tiny_bag

from wamdiff_ros.config import ConfigError
from wamdiff_ros.planners.wamdiff.config import TrajectoryTokensConfig
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planners.wamdiff.training import Collator, TaskMix, choose_task, mask_draws
from wamdiff_ros.training.loop import epoch_order
from wamdiff_ros.training.settings import TrainSettings, learning_rate
from wamdiff_ros.training.task import sample_rngs, torch_stream


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(write_tiny_bag(tmp_path_factory.mktemp("bag") / "tiny.mcap"))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return WamDiffNet(tiny_cfg())


def test_collate_shapes_masks_and_labels(dataset, net):
    plain, busy = dataset[0], dataset[len(dataset) - 1]
    assert not plain.language["reasoning"] and busy.language["reasoning"]
    collate = Collator.for_net(net)
    lay = net.layout
    batch, tasks = collate([plain, busy, busy, plain], np.random.default_rng(0), ["motion", "reasoning", "vqa", "vqa"])
    assert tasks == ["motion", "reasoning", "vqa", "vqa"]
    cams = net.cfg.rig_obj.cameras
    assert batch.images.shape == (4, len(cams), cams[0].height, cams[0].width, 3) and batch.images.dtype == torch.uint8
    assert batch.ego.shape == (4, 6 + 4 * net.cfg.encoder.history) and batch.ego.dtype == torch.float32
    assert batch.tokens.shape == batch.answer.shape == (4, lay.tokens_len)
    p, r = lay.prompt_len, lay.text_len
    ans = batch.answer.numpy()
    assert not ans[:, :p].any()  # prompts are never masked
    assert (ans[0, p : p + r] == 0).all() and ans[0, p + r :].all()  # motion: trajectory only
    assert ans[1, p:].all()  # reasoning: text and trajectory
    assert ans[2, p : p + r].all() and not ans[2, p + r :].any()  # vqa: text only
    assert batch.present.tolist() == [[False, True], [True, True], [True, False], [True, False]]
    assert batch.complex.tolist() == [0.0, 1.0, 1.0, 0.0]  # label = the tick has reasoning text, any task
    text = net.space.text
    assert batch.tokens[2, 1] == text.vqa_id and batch.tokens[1, 1] == text.plan_id
    traj = batch.tokens[0, p + r :].numpy()
    err = np.abs(net.space.decode_trajectory(traj)[:, :2] - plain.future[:, :2])
    assert err.max() <= net.space.traj.max_error() + 1e-9  # within the bins' quantisation
    reasoning_words = text.decode(batch.tokens[1, p : p + r].tolist())
    assert reasoning_words and busy.language["reasoning"].lower().startswith(reasoning_words.split()[0])


def test_collate_with_a_trajectory_prior_encodes_each_sample_from_its_own_ego(dataset):
    axes = tiny_cfg().trajectory
    net = WamDiffNet(tiny_cfg(trajectory=TrajectoryTokensConfig(axes.x, axes.y, prior="constant_velocity")))
    moving = next(s for s in dataset if s.ego.speed > 1.0 and s.language["reasoning"])
    batch, _ = Collator.for_net(net)([moving, moving], np.random.default_rng(0), ["motion", "reasoning"])
    for row in batch.tokens.numpy():
        decoded = net.space.decode_trajectory(row[net.layout.traj_offset :], moving.ego)[:, :2]
        assert np.abs(decoded - moving.future[:, :2]).max() <= net.space.traj.max_error() + 1e-9


def test_task_mix_falls_back_to_motion(dataset):
    plain, busy = dataset[0], dataset[len(dataset) - 1]
    rng = np.random.default_rng(1)
    only_reasoning = TaskMix(motion=0.0, reasoning=1.0, vqa=0.0)
    assert {choose_task(plain, only_reasoning, rng) for _ in range(20)} == {"motion"}
    assert {choose_task(busy, only_reasoning, rng) for _ in range(20)} == {"reasoning"}
    busy.language = {"reasoning": "", "vqa": []}
    assert choose_task(busy, TaskMix(0.0, 0.0, 1.0), rng) == "motion"
    draws = [choose_task(dataset[len(dataset) - 1], TaskMix(1.0, 1.0, 2.0), rng) for _ in range(400)]
    assert 0.4 < draws.count("vqa") / 400 < 0.6


def test_draws_are_reproducible_per_sample_position(dataset, net):
    """A sample's draws depend on (seed, step, its position in the global batch) only, so the two halves
    of a batch collated apart (two DDP ranks) equal the batch collated whole."""
    collate = Collator.for_net(net)
    samples = [dataset[i] for i in range(8)] + [dataset[len(dataset) - 1 - i] for i in range(8)]
    a, ta = collate(samples, sample_rngs(3, 17, range(16)))
    b, tb = collate(samples, sample_rngs(3, 17, range(16)))
    assert ta == tb and torch.equal(a.tokens, b.tokens)
    assert len(set(ta)) > 1
    lo, tlo = collate(samples[:8], sample_rngs(3, 17, range(8)))
    hi, thi = collate(samples[8:], sample_rngs(3, 17, range(8, 16)))
    assert tlo + thi == ta and torch.equal(torch.cat([lo.tokens, hi.tokens]), a.tokens)
    t, u = mask_draws(sample_rngs(3, 5, range(4)), 7)
    assert t.shape == (4,) and u.shape == (4, 7) and bool(((t >= 0) & (t < 1)).all())
    used = sample_rngs(3, 5, range(2, 4))
    [r.random() for r in used]  # the masks do not depend on what the sample's generator drew before
    t2, u2 = mask_draws(used, 7)
    assert torch.equal(t[2:], t2) and torch.equal(u[2:], u2)
    assert not torch.equal(mask_draws(sample_rngs(3, 6, range(4)), 7)[1], u)
    with pytest.raises(ValueError, match="torch_stream"):
        torch_stream(np.random.default_rng(0), 2)
    np.testing.assert_array_equal(epoch_order(50, 1, 2), epoch_order(50, 1, 2))
    assert sorted(epoch_order(50, 1, 2)) == list(range(50)) and not np.array_equal(
        epoch_order(50, 1, 2), epoch_order(50, 1, 3)
    )


def test_collate_rejects_bad_input(dataset, net):
    collate = Collator.for_net(net)
    with pytest.raises(ValueError, match="at least one sample"):
        collate([], np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs sample.language"):
        collate([dataset[0]], np.random.default_rng(0), ["reasoning"])
    s = dataset[0]
    s.images.pop("front")
    with pytest.raises(ValueError, match="lacks camera images"):
        collate([s], np.random.default_rng(0))


def test_settings_file_schedule_and_validation():
    s = TrainSettings.from_yaml("training/wamdiff_small.yaml")
    assert s.threads == 2 and s.model == "models/wamdiff_small.yaml"
    assert sum(TaskMix(**s.family["mix"]).probabilities()) == pytest.approx(1.0)
    assert s.replace(epochs=3, lr=None).epochs == 3 and s.replace(lr=None).lr == s.lr
    s = TrainSettings(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(s, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate(s, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate(s, 50, 0.5) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert learning_rate(s, 99, 1.0) == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainSettings(batch_size=1)
    with pytest.raises(ConfigError, match="non-negative"):
        TaskMix(motion=-1.0)
    with pytest.raises(ConfigError, match="unknown key"):
        TrainSettings.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="family: expected a mapping"):
        TrainSettings(family=["mix"])
    with pytest.raises(ConfigError, match="val_every_steps"):
        TrainSettings(val_every_steps=0)
