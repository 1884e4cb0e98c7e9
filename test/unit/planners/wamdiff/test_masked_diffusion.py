"""LLaDA masking and loss, the decoding orders, threshold-parallel unmasking, training a tiny model,
and the equivalence of the cached (encode + step) and full-sequence forward passes."""

import math

import numpy as np
import pytest
import torch

from wamdiff_ros.planners.wamdiff.config import tiny_config
from wamdiff_ros.planners.wamdiff.layout import make_sample
from wamdiff_ros.planners.wamdiff.masked_diffusion import (
    TrainBatch,
    compute_losses,
    decode_block,
    llada_loss,
    mask_tokens,
    p_mask_of,
    training_step,
)
from wamdiff_ros.planners.wamdiff.net import WamDiffNet

MASK = 1


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster and does not fight other jobs on a small machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_p_mask_and_masking_only_touches_answers():
    assert float(p_mask_of(torch.tensor(0.0))) == pytest.approx(1e-3)
    assert float(p_mask_of(torch.tensor(1.0))) == pytest.approx(1.0)
    tokens = torch.arange(20).repeat(3, 1) + 10
    answer = torch.zeros(3, 20, dtype=torch.bool)
    answer[:, 8:] = True
    noisy, masked, p = mask_tokens(tokens, answer, MASK, torch.tensor([1.0, 0.0, 0.5]))
    assert masked[0, 8:].all() and not masked[:, :8].any()
    assert (noisy[masked] == MASK).all() and (noisy[~masked] == tokens[~masked]).all()
    torch.testing.assert_close(p, torch.tensor([1.0, 1e-3, 0.5005]))
    g = torch.Generator().manual_seed(0)
    frac = (
        mask_tokens(
            torch.zeros(1, 20000, dtype=torch.long),
            torch.ones(1, 20000, dtype=torch.bool),
            MASK,
            torch.tensor([0.3]),
            g,
        )[1]
        .float()
        .mean()
    )
    assert float(frac) == pytest.approx(0.3 * 0.999 + 1e-3, abs=0.01)


def test_llada_loss_hand_computed():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    targets = torch.tensor([[0, 1, 1]])
    masked = torch.tensor([[True, False, True]])
    answer = torch.tensor([[True, True, True]])
    p = torch.tensor([0.5])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    ce2 = math.log(2)
    expected = (ce0 + ce2) / 0.5 / 3
    assert float(llada_loss(logits, targets, masked, p, answer)) == pytest.approx(expected, rel=1e-6)
    # two samples: each normalised by its own answer length, then averaged
    logits2 = logits.repeat(2, 1, 1)
    answer2 = torch.tensor([[True, True, True], [True, False, True]])
    masked2 = masked.repeat(2, 1)
    p2 = torch.tensor([0.5, 0.25])
    expected2 = ((ce0 + ce2) / 0.5 / 3 + (ce0 + ce2) / 0.25 / 2) / 2
    assert float(llada_loss(logits2, targets.repeat(2, 1), masked2, p2, answer2)) == pytest.approx(expected2, rel=1e-6)


def _fixed_logits(conf_per_pos: torch.Tensor, vocab: int = 5):
    """step_fn whose argmax is token 3 with probability conf_per_pos[j] at position j."""

    def step(ids):
        a = ids.shape[1]
        p = torch.full((ids.shape[0], a, vocab), 0.0)
        rest = (1 - conf_per_pos) / (vocab - 1)
        p[:] = rest[None, :, None]
        p[:, :, 3] = conf_per_pos
        return p.log()

    return step


def _decode(order, conf, steps=4, a=16, **kw):
    ids = torch.full((1, a), MASK)
    return decode_block(_fixed_logits(conf), ids, MASK, steps, order, **kw)


def test_causal_reveals_nearest_waypoints_first():
    res = _decode("causal", torch.full((16,), 0.5))
    assert res.step_of[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert int(torch.nonzero(res.step_of[0] == 0)[0]) == 0
    assert (res.ids == 3).all() and res.steps == 4


def test_reverse_causal_reveals_goal_first():
    res = _decode("reverse_causal", torch.full((16,), 0.5))
    assert res.step_of[0].tolist() == [3] * 4 + [2] * 4 + [1] * 4 + [0] * 4
    assert res.step_of[0, -1] == 0 and res.step_of[0, -2] == 0  # final waypoint's x and y


def test_low_confidence_reveals_most_confident_first_and_keeps_confidences():
    g = torch.Generator().manual_seed(1)
    conf = torch.rand(16, generator=g) * 0.5 + 0.3
    res = _decode("low_confidence", conf)
    order = torch.argsort(conf, descending=True)
    for k in range(4):
        assert set(torch.nonzero(res.step_of[0] == k).flatten().tolist()) == set(order[4 * k : 4 * k + 4].tolist())
    torch.testing.assert_close(res.confidences[0], conf, rtol=1e-5, atol=1e-6)


def test_random_order_is_a_seeded_permutation():
    conf = torch.full((16,), 0.5)
    a = _decode("random", conf, generator=torch.Generator().manual_seed(3))
    b = _decode("random", conf, generator=torch.Generator().manual_seed(3))
    c = _decode("random", conf, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.step_of, b.step_of)
    assert not torch.equal(a.step_of, c.step_of)
    assert torch.bincount(a.step_of[0], minlength=4).tolist() == [4, 4, 4, 4]
    assert a.step_of[0].tolist() != sorted(a.step_of[0].tolist())


def test_uneven_schedule_and_given_tokens_untouched():
    ids = torch.full((1, 7), MASK)
    ids[0, 2] = 4
    res = decode_block(_fixed_logits(torch.full((7,), 0.5)), ids, MASK, 4, "causal")
    assert res.ids[0, 2] == 4 and res.step_of[0, 2] == -1 and res.confidences[0, 2] == 1.0
    assert torch.bincount(res.step_of[0][res.step_of[0] >= 0], minlength=4).tolist() == [2, 2, 1, 1]


def test_threshold_parallel_unmasks_confident_tokens_early():
    conf = torch.tensor([0.99] * 10 + [0.2] * 6)
    res = _decode("causal", conf, steps=8, threshold=0.9)
    first = torch.nonzero(res.step_of[0] == 0).flatten().tolist()
    assert set(range(10)) <= set(first)  # every confident token in step 0, beyond the schedule of 2
    counts = torch.bincount(res.step_of[0], minlength=8)
    assert (counts[: res.steps] >= 1).all()
    assert res.steps < 8  # finished early
    low = _decode("causal", torch.full((16,), 0.2), steps=8, threshold=0.9)
    assert torch.bincount(low.step_of[0], minlength=8).tolist() == [2] * 8


def test_allowed_mask_constrains_tokens_and_temperature_samples():
    allowed = torch.zeros(4, 5, dtype=torch.bool)
    allowed[:, 0] = True
    allowed[2:, 2] = True
    res = decode_block(_fixed_logits(torch.full((4,), 0.9)), torch.full((1, 4), MASK), MASK, 2, allowed=allowed)
    assert res.ids[0].tolist() == [0, 0, 0, 0] or res.ids[0, 2:].tolist() in ([2, 2], [0, 2], [2, 0], [0, 0])
    assert set(res.ids[0, :2].tolist()) == {0}
    flat = lambda ids: torch.zeros(ids.shape[0], ids.shape[1], 50)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    sampled = decode_block(flat, torch.full((1, 64), MASK), MASK, 4, temperature=1.0, generator=g)
    assert len(set(sampled.ids[0].tolist())) > 10
    with pytest.raises(ValueError, match="order"):
        _decode("sideways", torch.full((16,), 0.5))


def _batch(net, n_rep=1, seed=0):
    cfg, space, lay = net.cfg, net.space, net.layout
    rng = np.random.default_rng(seed)
    wp1 = np.stack([np.linspace(2, 30, 8), np.linspace(0, 4, 8)], 1)
    wp2 = np.stack([np.linspace(1, 12, 8), np.zeros(8)], 1)
    samples = [
        make_sample(space, lay, "motion", "left", "", waypoints=wp1),
        make_sample(space, lay, "reasoning", "straight", "", "lead car brakes slow down", wp2),
        make_sample(space, lay, "vqa", "straight", "how many lanes", "3"),
    ] * n_rep
    b = len(samples)
    cams = cfg.rig_obj.cameras
    images = torch.from_numpy(rng.integers(0, 255, (b, len(cams), cams[0].height, cams[0].width, 3), dtype=np.uint8))
    ego = torch.from_numpy(rng.normal(size=(b, 6 + 4 * cfg.encoder.history)).astype(np.float32))
    return TrainBatch(
        images=images,
        ego=ego,
        tokens=torch.from_numpy(np.stack([s.tokens for s in samples])),
        answer=torch.from_numpy(np.stack([s.answer for s in samples])),
        present=torch.from_numpy(np.stack([s.present for s in samples])),
        complex=torch.tensor([s.complex for s in samples]),
    )


@pytest.mark.parametrize("routing", ["expert_choice", "token_choice"])
def test_tiny_model_overfits_one_multitask_batch(routing):
    torch.manual_seed(0)
    net = WamDiffNet(tiny_config(routing))
    batch = _batch(net)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    t_eval = torch.full((3,), 0.7)

    def eval_loss():
        net.eval()
        with torch.no_grad():
            return float(compute_losses(net, batch, torch.Generator().manual_seed(9), t_eval)["llada"])

    before = eval_loss()
    for _ in range(60):
        out = training_step(net, batch, opt, g)
        assert math.isfinite(out["total"])
    after = eval_loss()
    assert after < 0.3 * before, (before, after)
    # the overfit model decodes the motion sample's trajectory from an all-mask block
    net.eval()
    lay = net.layout
    with torch.no_grad():
        kv, _, _ = net.encode(batch.images[:1], batch.ego[:1], batch.tokens[:1, : lay.prompt_len])
        res = decode_block(
            lambda ids: net.step(kv, ids, lay.traj_offset)[0],
            torch.full((1, lay.traj_len), net.space.text.mask_id),
            net.space.text.mask_id,
            4,
            allowed=torch.from_numpy(net.space.trajectory_allowed()),
        )
    target = batch.tokens[0, lay.traj_offset :]
    assert (res.ids[0] == target).float().mean() >= 0.5  # chance: a few percent


@pytest.mark.parametrize("routing", ["expert_choice", "token_choice", "none"])
def test_cached_decoding_matches_full_sequence_forward(routing):
    torch.manual_seed(1)
    net = WamDiffNet(tiny_config(routing)).eval()
    with torch.no_grad():
        for blk in net.transformer.blocks:
            if blk.moe is not None:
                torch.nn.init.normal_(blk.moe.lora_b, std=0.3)
                torch.nn.init.normal_(blk.moe.router.weight, std=1.0)
    batch = _batch(net)
    lay = net.layout
    p = lay.prompt_len
    with torch.no_grad():
        full, comp_full, _ = net.forward_train(batch.images, batch.ego, batch.tokens, batch.present)
        for i in range(2):
            kv, comp, _ = net.encode(batch.images[i : i + 1], batch.ego[i : i + 1], batch.tokens[i : i + 1, :p])
            torch.testing.assert_close(comp, comp_full[i : i + 1], rtol=1e-4, atol=1e-5)
            text_ids = batch.tokens[i : i + 1, p : lay.traj_offset]
            traj_ids = batch.tokens[i : i + 1, lay.traj_offset :]
            if batch.present[i, 0]:
                logits_text, text_kv, _ = net.step(kv, text_ids, lay.text_offset)
                torch.testing.assert_close(logits_text, full[i : i + 1, : lay.text_len], rtol=1e-4, atol=1e-4)
                kv = torch.cat([kv, text_kv], dim=4)
            logits_traj, _, _ = net.step(kv, traj_ids, lay.traj_offset)
            torch.testing.assert_close(logits_traj, full[i : i + 1, lay.text_len :], rtol=1e-4, atol=1e-4)
