"""RL fine-tuning: the GSPO / GRPO objectives against hand-computed values, the masked-diffusion
policy's likelihood (re-evaluation on the same partial masks reproduces the decoder's probabilities),
rewards from the scorer, and the trainer (the reward rises, best/last/history, exact resume)."""

import json
import math

import numpy as np
import pytest
import torch

from unit.helpers.training import tiny_cfg, write_tiny_bag
from wamdiff_ros.config import ConfigError
from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.masked_diffusion import decode_block
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planners.wamdiff.policy import WamDiffPolicy
from wamdiff_ros.training.rl.objectives import gate_advantages, group_advantages, grpo_loss, gspo_loss, kl_k3
from wamdiff_ros.training.rl.rewards import RewardConfig, group_rewards
from wamdiff_ros.training.rl.settings import RLSettings
from wamdiff_ros.training.rl.trainer import BEST, HISTORY, LAST, RLTrainer, better, reference_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    bag = write_tiny_bag(tmp_path_factory.mktemp("bag") / "tiny.mcap")
    cfg = tiny_cfg()
    return DrivingDataset(
        [bag], spec=cfg.spec, history=cfg.encoder.history, cache_dir=None, rig=cfg.rig_obj, scenes=False
    )


def _policy(seed=0, **kw):
    torch.manual_seed(seed)
    return WamDiffPolicy(WamDiffPlanner(WamDiffNet(tiny_cfg())), **kw)


# -- objectives ------------------------------------------------------------------------------------


def test_group_advantages_by_hand():
    """r = 1, 2, 3, 4: mean 2.5, population std √1.25 = 1.1180 -> ±0.4472, ±1.3416 (eps 1e-4 aside);
    equal rewards carry no advantage."""
    a = group_advantages(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.7, 0.7, 0.7, 0.7]]))
    std = math.sqrt(1.25) + 1e-4
    np.testing.assert_allclose(a[0].numpy(), np.array([-1.5, -0.5, 0.5, 1.5]) / std, rtol=1e-6)
    assert torch.equal(a[1], torch.zeros(4))


def test_std_floor_shrinks_near_tied_groups():
    """Rewards 0.98, 1.00 (std 0.01) with a floor of 0.05: advantages ±0.01/0.05 = ±0.2 instead of ±1;
    a group spread wider than the floor is unchanged."""
    a = group_advantages(torch.tensor([[0.98, 1.00], [0.0, 1.0]], dtype=torch.float64), eps=0.0, std_floor=0.05)
    np.testing.assert_allclose(a.numpy(), [[-0.2, 0.2], [-1.0, 1.0]], atol=1e-12)


def test_kl_k3_by_hand():
    """π_θ = 0.5, π_ref = 0.25: d = ln 0.5, k3 = 0.5 − ln 0.5 − 1 = 0.19315; 0 when equal."""
    k = kl_k3(torch.tensor([math.log(0.5), -1.0]), torch.tensor([math.log(0.25), -1.0]))
    np.testing.assert_allclose(k.numpy(), [0.5 - math.log(0.5) - 1.0, 0.0], atol=1e-7)


def test_gspo_sequence_ratio_and_clipping_by_hand():
    """Sequence 1: two generated tokens with log-ratios 0.002, 0 (a third, not generated, 5.0 is
    ignored) -> s = e^0.001 = 1.0010005, A = +1 -> clipped to 1 + 4e-4. Sequence 2: log-ratio −0.001,
    s = 0.9990005, A = −1 -> min(−0.9990005, −0.9997) = −0.9997. Loss −(1.0004 − 0.9997)/2 = −3.5e-4;
    both are clipped, so no gradient flows."""
    old = torch.zeros(2, 3, dtype=torch.float64)
    logp = torch.tensor([[0.002, 0.0, 5.0], [-0.001, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss, stats = gspo_loss(logp, old, torch.tensor([1.0, -1.0]), mask, clip_low=3e-4, clip_high=4e-4)
    assert loss.item() == pytest.approx(-(1.0004 - 0.9997) / 2, abs=1e-12)
    assert stats["clip_fraction"] == 1.0
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2, 3, dtype=torch.float64))


def test_gspo_on_policy_gradient_is_advantage_over_length():
    """At s = 1 (on-policy): d loss / d logp_it = −A_i / (N·|y_i|) for generated tokens, 0 elsewhere.
    With A = (2, −1), |y| = (2, 1), N = 2: −0.5, −0.5, 0 | +0.5, 0, 0."""
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss, stats = gspo_loss(logp, logp.detach(), torch.tensor([2.0, -1.0]), mask)
    loss.backward()
    np.testing.assert_allclose(logp.grad.numpy(), [[-0.5, -0.5, 0.0], [0.5, 0.0, 0.0]], atol=1e-7)
    assert stats["ratio_mean"] == 1.0 and stats["clip_fraction"] == 0.0


def test_gspo_kl_term_by_hand():
    """beta 0.1, one token with π_θ = 0.5 and π_ref = 0.25, advantage 0: loss = 0.1 · 0.19315."""
    logp = torch.tensor([[math.log(0.5)]])
    loss, stats = gspo_loss(
        logp, logp, torch.zeros(1), torch.ones(1, 1, dtype=torch.bool), ref_logp=torch.tensor([[math.log(0.25)]]),
        beta=0.1,
    )  # fmt: skip
    assert float(loss) == pytest.approx(0.1 * (0.5 - math.log(0.5) - 1.0), rel=1e-6)
    assert stats["kl"] == pytest.approx(0.5 - math.log(0.5) - 1.0, rel=1e-6)


def test_grpo_token_ratio_by_hand():
    """One sequence, A = +1, token ratios 1.5 and 0.5, clip 0.2: min(1.5, 1.2) = 1.2, min(0.5, 0.5) = 0.5
    -> loss −(1.2 + 0.5)/2 = −0.85; one of two tokens clipped. GSPO on the same tokens uses the
    geometric mean ratio √0.75 = 0.866 instead, inside no clip range of 3e-4: loss −0.866."""
    logp = torch.tensor([[math.log(1.5), math.log(0.5)]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, stats = grpo_loss(logp, torch.zeros(1, 2), torch.ones(1), mask, clip=0.2)
    assert float(loss) == pytest.approx(-0.85, abs=1e-6)
    assert stats["clip_fraction"] == 0.5
    loss_s, _ = gspo_loss(logp, torch.zeros(1, 2), torch.ones(1), mask, clip_low=0.2, clip_high=0.2)
    assert float(loss_s) == pytest.approx(-math.sqrt(0.75), abs=1e-6)


# -- policy ----------------------------------------------------------------------------------------


def test_policy_likelihood_matches_the_decoder(dataset):
    """Re-evaluating the sampled answers on their partial masks (all steps, all samples, one batched
    call) gives the probability each token had when the decoder revealed it (temperature 1)."""
    policy = _policy(temperature=1.0)
    obs = dataset.observation(0)
    ro = policy.sample(obs, 6, torch.Generator().manual_seed(3))
    assert ro.actions.shape == (6, 16) and ro.poses.shape == (6, 8, 3) and bool(ro.mask.all())
    assert ro.actions.dtype == torch.int64 and ro.groups is None
    assert len({tuple(r) for r in ro.actions.tolist()}) > 1  # sampling differs between group members
    net, lay = policy.net, policy.net.layout
    ctx = ro.context
    with torch.no_grad():
        kv = net.encode(ctx.images, ctx.ego, ctx.prompt)[0].expand(-1, -1, 6, -1, -1, -1)
        ids = torch.full((6, lay.traj_len), policy._mask_id, dtype=torch.long)
        order = policy.planner.cfg.decoding.order_for(obs.command, None)
        res = decode_block(
            lambda x: net.step(kv, x, lay.traj_offset)[0], ids, policy._mask_id, policy.steps, order,
            policy._allowed, None, None, 1.0, torch.Generator().manual_seed(3),
        )  # fmt: skip
        logp = policy.logprobs(ro)
    assert torch.equal(res.ids, ro.actions) and torch.equal(res.step_of, ctx.step_of)
    np.testing.assert_allclose(logp.exp().numpy(), res.confidences.numpy(), rtol=1e-4, atol=1e-6)


def test_policy_gradients_reach_only_the_trained_parameters(dataset):
    policy = _policy()
    trained = policy.trainable_parameters(policy.net, "transformer")
    ro = policy.sample(dataset.observation(0), 3, torch.Generator().manual_seed(0))
    policy.logprobs(ro).sum().backward()
    names = {n for n, p in policy.net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("transformer.") for n in names) and "tok_emb.weight" in names
    assert not any(n.startswith(("encoder.", "complexity.")) for n in names)
    assert len(trained) < sum(1 for _ in policy.net.parameters())


def test_policy_rejects_bad_settings():
    with pytest.raises(ValueError, match="temperature"):
        _policy(temperature=0.0)
    with pytest.raises(ValueError, match="order"):
        _policy(order="sideways")
    with pytest.raises(ValueError, match="rl trainable: expected one of"):
        _policy().trainable_parameters(_policy().net, "encoder_only")


# -- rewards and settings --------------------------------------------------------------------------


def test_rewards_score_the_group_and_apply_penalties(dataset):
    scene = dataset.scene(0)
    logged = dataset[0].future
    far = logged.copy()
    far[:, 1] += 3.0  # one lane to the left of the log
    poses = np.stack([logged, far])
    r, m = group_rewards(poses, scene, RewardConfig())
    assert r.shape == (2,) and np.array_equal(r, m["PDMS"])
    assert m["ade"][0] == pytest.approx(0.0, abs=1e-9) and m["ade"][1] == pytest.approx(3.0, abs=1e-6)
    r2, _ = group_rewards(poses, scene, RewardConfig(metric="epdms", scale=10.0, ade_weight=0.5))
    np.testing.assert_allclose(r2, 10.0 * m["EPDMS"] - 0.5 * m["ade"])


def test_settings_validation_names_the_field(tmp_path):
    s = RLSettings.from_yaml("training/rl_wamdiff_small.yaml")
    assert s.algorithm == "gspo" and s.clip_low == 3e-4 and s.clip_high == 4e-4
    with pytest.raises(ConfigError, match="algorithm='ppo'"):
        RLSettings(algorithm="ppo")
    with pytest.raises(ConfigError, match="group_size=1"):
        RLSettings(group_size=1)
    with pytest.raises(ConfigError, match="unknown key"):
        RLSettings.from_dict({"groups": 4})
    with pytest.raises(ConfigError, match="reward.metric"):
        RLSettings(reward={"metric": "l2"})


# -- trainer ---------------------------------------------------------------------------------------


def _settings(**kw):
    base = dict(
        group_size=6, scenes_per_step=3, every=4, epochs=50, lr=1e-3, kl_beta=0.01, threads=1, val_frames=3,
        val_every_steps=4, save_every_steps=2, reward=RewardConfig(ade_weight=1.0),
    )  # fmt: skip
    return RLSettings(**{**base, **kw})


def _trainer(dataset, out, algorithm="gspo", seed=0, **kw):
    """A trainer whose KL reference is always the seed-0 network (the run's start model)."""
    policy = _policy(seed)
    return RLTrainer(
        policy, reference_copy(_policy(0).net), dataset, out, _settings(algorithm=algorithm, **kw), dataset,
        start_model="tiny", progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("algorithm", ["gspo", "grpo"])
def test_training_raises_the_reward(dataset, tmp_path, algorithm):
    """Reward −ADE (plus PDMS, 0 for the untrained model): 16 steps move the sampled trajectories
    towards the log."""
    tr = _trainer(dataset, tmp_path / "run", algorithm, max_steps=16)
    summary = tr.run()
    rewards = [r["reward_mean"] for r in tr.state["history"]]
    assert summary["steps"] == 16 and summary["stop_reason"] == "max_steps 16"
    assert np.mean(rewards[-4:]) > np.mean(rewards[:4]) + 1.0
    history = json.loads((tmp_path / "run" / HISTORY).read_text())
    assert len(history["steps"]) == 16 and [v["step"] for v in history["validations"]] == [0, 4, 8, 12, 16]
    assert (tmp_path / "run" / LAST / "trainer_state.json").is_file()
    assert all(h["kl"] >= 0 for h in history["steps"])


def test_better_prefers_pdms_then_ade():
    assert better({"PDMS": 0.8, "ade": 3.0}, {"PDMS": 0.7, "ade": 1.0})
    assert not better({"PDMS": 0.7, "ade": 0.5}, {"PDMS": 0.8, "ade": 3.0})
    assert better({"PDMS": 0.0, "ade": 2.0}, {"PDMS": 0.0, "ade": 3.0})
    assert not better({"PDMS": 0.0, "ade": 3.0}, {"PDMS": 0.0, "ade": 3.0})
    assert not better({"step": 3}, {"PDMS": 0.0, "ade": 3.0})


def test_best_is_written_only_when_validation_beats_the_start(dataset, tmp_path):
    tr = _trainer(dataset, tmp_path / "run", max_steps=4, val_every_steps=2)
    published = []
    tr.on_best = lambda path, rec: published.append((path, rec["PDMS"]))
    tr.run()
    vals = tr.state["validations"]
    improved = [v for v in vals[1:] if better(v, vals[0])]
    assert improved, "ADE falls with the reward -ADE: the tie-break on PDMS 0 must select a model"
    assert (tmp_path / "run" / BEST).is_dir()
    assert [p for _, p in published] == [v["PDMS"] for v in vals if v["best"]]
    assert all(better(v, vals[0]) for v in vals if v["best"])


def test_stop_and_resume_equals_uninterrupted(dataset, tmp_path):
    full = _trainer(dataset, tmp_path / "full", max_steps=4)
    full.run()
    part = _trainer(dataset, tmp_path / "part", max_steps=2)
    part.run()
    resumed = _trainer(dataset, tmp_path / "part", seed=7, max_steps=4)  # other init: weights come from last/
    resumed.run(resume=True)
    for (n, a), (_, b) in zip(full.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), n
    assert [r["reward_mean"] for r in full.state["history"]] == [r["reward_mean"] for r in resumed.state["history"]]


def test_resume_refuses_another_start_model(dataset, tmp_path):
    from wamdiff_ros.models.checkpoint import CheckpointError

    _trainer(dataset, tmp_path / "run", max_steps=2).run()
    other = _trainer(dataset, tmp_path / "run", max_steps=3)
    other.start_model = "another"
    with pytest.raises(CheckpointError, match="started from tiny"):
        other.run(resume=True)


def test_gate_advantages_rules_in_order():
    adv = torch.tensor([1.0, -0.5, 0.8, 0.3, -1.2])
    rewards = torch.tensor([0.9, 0.2, 0.5, 0.95, 0.0])
    failed = torch.tensor([False, False, False, True, False])
    out = gate_advantages(adv, rewards, floor=0.0, reference_reward=0.6, failed=failed, fail_value=-1.0)
    assert out.tolist() == [1.0, 0.0, 0.0, -1.0, 0.0]
    assert torch.equal(gate_advantages(adv, rewards), adv)  # every rule off


def test_grpo_weights_make_a_weighted_mean_over_actions():
    logp = torch.tensor([[0.1, -0.2, 0.0]], requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    w = torch.tensor([[0.64, 0.8, 1.0]])
    loss, _ = grpo_loss(logp, logp.detach(), torch.tensor([2.0]), mask, weights=w)
    loss.backward()
    # ratio 1 at the sampling weights: d loss / d logp_t = −A·w_t / Σw
    torch.testing.assert_close(logp.grad, -2.0 * w / w.sum())


def test_rollout_reward_offset_has_one_value_per_answer():
    from wamdiff_ros.training.rl.policy import Rollout

    actions, mask, poses = torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.bool), np.zeros((3, 8, 3))
    assert Rollout(actions, mask, poses, reward_offset=torch.tensor([0.0, -0.1, 0.0])).reward_offset.shape == (3,)
    with pytest.raises(ValueError, match="reward_offset must have G=3 rows"):
        Rollout(actions, mask, poses, reward_offset=torch.zeros(2))
