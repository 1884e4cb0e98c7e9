"""DiffusionDrive family parts against hand-computed values: DDIM scheduler, k-means anchors and their
coverage, the multiplicative-noise log-density, network shapes, save/load, the RL policy's log-probs and
the supervised task's steps."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from unit.helpers.runtime import observation
from unit.helpers.training import write_tiny_bag
from wamdiff_ros.config import ConfigError
from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.geometry import smooth_path
from wamdiff_ros.planners import load_planner
from wamdiff_ros.planners.diffusiondrive.anchors import SCALE, coverage, fit_anchors, kmeans
from wamdiff_ros.planners.diffusiondrive.config import ModelConfig, tiny_config
from wamdiff_ros.planners.diffusiondrive.net import DiffusionDriveNet
from wamdiff_ros.planners.diffusiondrive.planner import DiffusionDrivePlanner
from wamdiff_ros.planners.diffusiondrive.policy import NORM_FLOOR, multiplicative_logprob
from wamdiff_ros.planners.diffusiondrive.scheduler import DDIMScheduler
from wamdiff_ros.training.loop import epoch_order

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_planner(seed: int = 0, **overrides) -> DiffusionDrivePlanner:
    torch.manual_seed(seed)
    return DiffusionDrivePlanner(DiffusionDriveNet(tiny_config(**overrides)))


# -- scheduler --------------------------------------------------------------------------------------
def test_scaled_linear_betas_by_hand():
    s = DDIMScheduler(3, 0.01, 0.04)  # sqrt: 0.1, 0.15, 0.2 -> betas 0.01, 0.0225, 0.04
    np.testing.assert_allclose(s.alphas_cumprod, [0.99, 0.99 * 0.9775, 0.99 * 0.9775 * 0.96])
    assert s.alpha(-1) == 1.0
    x0, eps = torch.tensor([[2.0]]), torch.tensor([[1.0]])
    xt = s.add_noise(x0, eps, torch.tensor([0]))
    assert float(xt) == pytest.approx(math.sqrt(0.99) * 2 + math.sqrt(0.01))


def test_ddim_sigma_and_deterministic_step_by_hand():
    s = DDIMScheduler(3, 0.01, 0.04)
    a1, a2 = 0.99 * 0.9775, 0.99 * 0.9775 * 0.96
    sp = s.step_params(2, 1, eta=1.0)
    assert sp.sigma == pytest.approx(math.sqrt((1 - a1) / (1 - a2)) * math.sqrt(1 - a2 / a1))
    assert s.step_params(2, 1, eta=0.0).sigma == 0.0
    # eta 0 with a perfect clean-sample prediction moves x_t exactly to the same noise at t = prev
    x0, eps = torch.randn(4, 8, 2), torch.randn(4, 8, 2)
    xt = s.add_noise(x0, eps, torch.full((4,), 2))
    torch.testing.assert_close(s.step_params(2, 1).mean(xt, x0), s.add_noise(x0, eps, torch.full((4,), 1)))
    torch.testing.assert_close(s.step_params(1, -1).mean(xt, x0), x0)  # the last step returns x0


def test_truncated_timesteps():
    s = DDIMScheduler()
    assert s.timesteps(8, 2) == [8, 4]
    assert s.timesteps(10, 10) == list(range(10, 0, -1))
    assert [(sp.t, sp.prev) for sp in s.schedule(8, 2)] == [(8, 4), (4, -1)]
    with pytest.raises(ValueError, match="steps <= start"):
        s.timesteps(8, 10)
    with pytest.raises(ValueError, match="train_steps"):
        DDIMScheduler(1000, 0.02, 0.01)


# -- anchors ----------------------------------------------------------------------------------------
def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal([0.0, 0.0], 0.01, (30, 2))
    b = rng.normal([5.0, 1.0], 0.01, (20, 2))
    c = kmeans(np.concatenate([b, a]), 2)
    np.testing.assert_allclose(c, [a.mean(0), b.mean(0)], atol=1e-12)  # sorted by the first coordinate
    with pytest.raises(ValueError, match="distinct points"):
        kmeans(np.zeros((5, 2)), 2)


def test_anchors_cover_their_own_data_exactly():
    t = np.arange(1, 9) * 0.5
    futures = np.array([np.stack([v * t, y * t], 1) for v in (5.0, 10.0, 20.0) for y in (0.0, 1.0)] * 3)
    anchors = fit_anchors(futures, 6)
    assert anchors.shape == (6, 8, 2)
    cov = coverage(anchors, futures)
    assert cov["ade_mean"] == pytest.approx(0.0, abs=1e-9) and cov["frames"] == 18
    assert coverage(anchors[:1], futures)["fde_mean"] > 10.0


# -- RL noise ---------------------------------------------------------------------------------------
def test_multiplicative_logprob_by_hand():
    mu = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (N=1, T=2, 2)
    sigma, eps = 0.1, torch.tensor([0.5, -1.0])
    x = mu * (1 + sigma * eps)
    sq = torch.tensor([1.0 + 9.0, 4.0 + 16.0])  # ‖μ_x‖², ‖μ_y‖²
    norms = torch.sqrt(sq + 1e-6)
    corr = sq / (sq + 1e-6)  # ε̂ recovers ε up to the 1e-6 norm floor
    expected = sum(
        -0.5 * float(eps[a] * corr[a]) ** 2 - 0.5 * math.log(2 * math.pi) - math.log(sigma * float(norms[a]))
        for a in range(2)
    )
    got = multiplicative_logprob(x, mu, torch.tensor(sigma))
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)


# -- network and planner ----------------------------------------------------------------------------
def test_shapes_modes_and_determinism():
    p = tiny_planner()
    obs = observation(p.rig, 0)
    k = p.cfg.num_anchors
    x0, logits = p.net.denoise(torch.zeros(2, 9, 32), torch.zeros(2, 3 * k, 8, 2), torch.tensor([4.0, 8.0]))
    assert x0.shape == (2, 3 * k, 8, 2) and logits.shape == (2, 3 * k)
    fast = p.plan(obs)
    assert fast.mode == "fast" and fast.candidates.shape == (k, 8, 3) and fast.trajectory.poses.shape == (8, 3)
    assert fast.candidate_scores.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(fast.trajectory.poses, p.plan(obs).trajectory.poses)
    p.set_mode("slow")
    slow = p.plan(obs)
    keep = min(p.cfg.selector.keep, (p.cfg.selector.copies + 1) * k)
    assert slow.mode == "slow" and slow.candidates.shape == (keep, 8, 3) and "select" in slow.timings_ms
    p.set_mode("adaptive")
    assert p.plan(obs, budget_ms=None).mode == "fast"  # untrained selector heads would pick at random
    p.cfg.selector.trained = True
    assert p.plan(obs, budget_ms=1e-3).mode == "fast" and p.plan(obs, budget_ms=None).mode == "slow"
    with pytest.raises(ValueError, match="Observation.images"):
        p.plan(dataclasses.replace(obs, images={}))


def test_save_load_round_trip(tmp_path):
    p = tiny_planner(seed=3)
    p.net.set_anchors(p.cfg.anchor_array * 1.1)
    folder = p.save(tmp_path / "m")
    q = load_planner(folder)
    assert type(q) is DiffusionDrivePlanner and q.cfg.to_dict() == p.cfg.to_dict()
    for k, v in p.net.state_dict().items():
        torch.testing.assert_close(v, q.net.state_dict()[k])
    obs = observation(p.rig, 1)
    p2 = DiffusionDrivePlanner(p.net)
    np.testing.assert_allclose(q.plan(obs).trajectory.poses, p2.plan(obs).trajectory.poses, atol=1e-6)
    with pytest.raises(Exception, match="family"):
        ModelConfig.from_dict({**p.cfg.to_dict(), "family": "wamdiff"})


def test_policy_logprobs_reproduce_the_sampler():
    p = tiny_planner()
    pol = p.rl_policy(steps=4)
    ro = pol.sample(observation(p.rig, 0), 3, torch.Generator().manual_seed(0))
    k = p.cfg.num_anchors
    assert ro.actions.shape == (3 * k, 4, 16) and ro.poses.shape == (3 * k, 8, 3)
    assert ro.groups.tolist() == [i % k for i in range(3 * k)]
    np.testing.assert_allclose(ro.weights[0].numpy(), [0.8**3, 0.8**2, 0.8, 1.0], rtol=1e-6)
    with torch.no_grad():
        logp = pol.logprobs(ro)
    assert logp.shape == (3 * k, 4) and torch.isfinite(logp).all()
    # re-evaluated in one batched pass, every action is exactly μ·(1 + σ·ε) with one ε per axis per trajectory
    acts = ro.actions.reshape(3 * k, 4, 8, 2)
    with torch.no_grad():
        _, mu = pol._means(ro, pol.net)
    sig = pol.sigmas[None, :, None]
    norm2 = mu.pow(2).sum(2) + NORM_FLOOR**2  # an untrained model's straight anchors have y = 0: no spread there
    eps = (mu * (acts - mu)).sum(2) / (sig * norm2)
    torch.testing.assert_close(mu * (1.0 + sig[..., None] * eps[:, :, None]), acts, atol=1e-5, rtol=1e-5)
    assert 0.5 < float(eps.std()) < 2.0 and pol.sigmas.min() >= 0.04
    expected = (-0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - torch.log(sig * norm2.sqrt())).sum(-1)
    torch.testing.assert_close(logp, expected, atol=1e-3, rtol=1e-4)
    lp = pol.logprobs(ro)
    lp.sum().backward()
    assert any(prm.grad is not None and prm.grad.abs().sum() > 0 for prm in pol.net.parameters())


def test_supervised_task_prepares_anchors_and_reduces_the_loss(tmp_path):
    p = tiny_planner()
    bag = write_tiny_bag(tmp_path / "tiny.mcap")
    assert not p.cfg.selector.trained
    task = p.supervised_task(selector_weight=0.1)
    assert p.cfg.selector.trained  # saved with the checkpoint: adaptive may pick the slow path
    needs = task.data_needs()
    assert needs.scenes and needs.history == p.history
    ds = DrivingDataset([bag], spec=needs.spec, history=needs.history, cache_dir=None, rig=needs.rig, scenes=True)
    report = task.prepare(ds)
    assert report["anchors"] == p.cfg.num_anchors and report["train_coverage"]["ade_mean"] < 1.0
    np.testing.assert_allclose(p.anchors.numpy() * [50.0, 20.0], np.asarray(p.cfg.anchors), atol=1e-5)
    idx = epoch_order(len(ds), 0, 0)[:6]
    batch = task.collate([ds[int(i)] for i in idx], [np.random.default_rng(i) for i in range(6)])
    assert batch["labels"].shape == (6, p.cfg.num_anchors + 1) and 0 <= batch["labels"].min() <= 1
    opt = torch.optim.Adam(task.trainable_parameters(), lr=3e-3)
    p.net.train()
    losses = []
    for _ in range(12):
        loss, parts = task.loss(batch)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(q.grad).all() for q in task.trainable_parameters() if q.grad is not None)
        opt.step()
        losses.append(float(loss))
    assert set(parts) >= {"reg_l1", "cls_ce", "selector_bce", "anchor_acc"}
    assert losses[-1] < 0.7 * losses[0]


def test_regression_loss_is_in_metres_on_both_axes(monkeypatch):
    # the positive anchor's prediction 1 m off in x (then in y) costs the same L1, 0.5 m over (x, y): in
    # normalised units x/50, y/20 the regression was 50x (20x) smaller than its error and the
    # cross-entropy drowned it (the decoder learned nothing beyond echoing its noisy input)
    p = tiny_planner()
    task = p.supervised_task(selector_weight=0.0)
    b, k = 3, p.cfg.num_anchors
    target = p.anchors[:b] + 0.01
    batch = {"target": target, "t": torch.zeros(b, dtype=torch.long), "noise": torch.zeros(b, k, 8, 2)}
    for axis in (0, 1):
        off = torch.zeros(2)
        off[axis] = 1.0 / float(SCALE[axis])
        monkeypatch.setattr(
            p.net,
            "denoise",
            lambda scene, x_t, t, off=off: ((target[:, None] + off).expand(b, k, 8, 2), torch.zeros(b, k)),
        )
        _, parts = task.loss_on_scene(torch.zeros(b, 9, 32), batch)
        assert parts["reg_l1"] == pytest.approx(0.5, rel=1e-5)


def test_ego_token_reaches_every_query_directly():
    # the anchor logits depend on the ego motion even where cross-attention to the scene is cut off
    p = tiny_planner()
    with torch.no_grad():
        for layer in p.net.layers:
            layer.cross.out.weight.zero_()
            layer.cross.out.bias.zero_()
        scene = torch.randn(1, 9, 32)
        x_t = p.anchors[None]
        _, a = p.net.denoise(scene, x_t, torch.tensor([4.0]))
        scene[:, :-1] = torch.randn(1, 8, 32)  # other image tokens: no effect without cross-attention
        _, b = p.net.denoise(scene, x_t, torch.tensor([4.0]))
        scene[:, -1] = torch.randn(32)  # another ego token
        _, c = p.net.denoise(scene, x_t, torch.tensor([4.0]))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3


def test_untrained_decoder_returns_the_clean_anchors_whatever_the_noise():
    # the prediction is the anchor plus a learned offset (zero at the start): the decoder never has to
    # learn to undo the noise first, and the plan of an untrained model carries none of it
    p = tiny_planner()
    k = p.cfg.num_anchors
    scene = torch.randn(2, 9, 32)
    x_t = p.anchors.repeat(2, 1, 1)[None].expand(2, -1, -1, -1) + 0.05 * torch.randn(2, 2 * k, 8, 2)
    x0, _ = p.net.denoise(scene, x_t, torch.tensor([8.0, 30.0]))
    torch.testing.assert_close(x0, p.anchors.repeat(2, 1, 1)[None].expand(2, -1, -1, -1))
    plan = p.plan(observation(p.rig, 0))
    np.testing.assert_allclose(plan.trajectory.poses[:, :2], p.cfg.anchor_array[plan.info["anchor"]], atol=1e-5)
    with pytest.raises(ValueError, match="anchors"):
        p.net.set_anchors(np.zeros((k + 1, 8, 2)))


def test_planner_smooths_its_paths_when_configured():
    p = tiny_planner()
    obs = observation(p.rig, 0)
    raw = p.plan(obs)
    q = DiffusionDrivePlanner(DiffusionDriveNet(dataclasses.replace(p.cfg, smooth_degree=2)))
    q.net.load_state_dict(p.net.state_dict())
    smooth = q.plan(obs)
    times = p.spec.times
    np.testing.assert_allclose(smooth.candidates, smooth_path(raw.candidates, times, 2), atol=1e-9)
    np.testing.assert_allclose(smooth.trajectory.poses, smooth_path(raw.trajectory.poses, times, 2), atol=1e-9)
    with pytest.raises(ConfigError, match="smooth_degree"):
        dataclasses.replace(p.cfg, smooth_degree=7)


def test_anchor_coverage_command(tmp_path, capsys):
    import json

    from wamdiff_ros.planners.diffusiondrive.anchors import main

    model = tiny_planner().save(tmp_path / "m")
    bag = write_tiny_bag(tmp_path / "tiny.mcap")
    assert main(["--model", str(model), "--data", str(bag)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["anchors"] == 6 and report["frames"] > 0 and report["ade_mean"] > 0
