"""TrajMoE family: vocabulary clustering, sparse-MoE routing and balance loss, ranking, planner,
checkpoint round trip, ONNX Runtime parity, scorer labels (resumable, safe format), the supervised task
and two RL steps on the Gaussian score heads, all on a tiny config."""

import json

import numpy as np
import pytest
import torch

from unit.helpers.runtime import observation
from unit.helpers.training import write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.models.moe import cv_squared
from wamdiff_ros.planners import load_planner
from wamdiff_ros.planners.base import families
from wamdiff_ros.planners.trajmoe import TrajMoEPlanner
from wamdiff_ros.planners.trajmoe.config import METRICS, ScoringConfig, tiny_config
from wamdiff_ros.planners.trajmoe.labels import (
    LabelJob,
    LabelStore,
    label_frame,
    make_labels,
    run_label_job,
    score_vocabulary,
)
from wamdiff_ros.planners.trajmoe.moe_ffn import SparseMoEFFN
from wamdiff_ros.planners.trajmoe.net import TrajMoENet, plan_scores
from wamdiff_ros.planners.trajmoe.task import dataset_futures
from wamdiff_ros.planners.trajmoe.vocabulary import cluster_futures, coverage, default_vocabulary
from wamdiff_ros.training.rl.rewards import RewardConfig
from wamdiff_ros.training.rl.session import build_trainer
from wamdiff_ros.training.rl.settings import RLSettings
from wamdiff_ros.types import TrajectorySpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 16


def tiny_net(seed: int = 0, **overrides) -> TrajMoENet:
    torch.manual_seed(seed)
    return TrajMoENet(tiny_config(vocab_size=VOCAB, **overrides))


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_tiny_bag(tmp_path_factory.mktemp("trajmoe") / "tiny.mcap")


def dataset(bag, scenes=True):
    cfg = tiny_config()
    return DrivingDataset(
        [bag], spec=cfg.spec, history=cfg.encoder.history, cache_dir=None, rig=cfg.rig_obj, scenes=scenes
    )


# -- vocabulary --------------------------------------------------------------------------------------
def test_kmeans_finds_separated_groups_most_populous_first():
    t = np.arange(1, 9) * 0.5
    rng = np.random.default_rng(0)

    def group(speed, lateral, n):
        x = speed * t + rng.normal(0, 0.05, (n, 8))
        y = lateral * t / 4 + rng.normal(0, 0.05, (n, 8))
        return np.stack([x, y, np.full((n, 8), 0.1 * lateral)], -1)

    futures = np.concatenate([group(5, 0, 4), group(15, 3, 10), group(10, -3, 6)])
    fit = cluster_futures(futures, 3, seed=1)
    assert fit.counts.tolist() == [10, 6, 4]
    np.testing.assert_allclose(fit.entries[0, :, 0], futures[4:14, :, 0].mean(0), atol=1e-9)
    np.testing.assert_allclose(fit.entries[1, :, 2], 0.1 * -3, atol=1e-9)  # circular mean of equal headings
    cov = coverage(fit.entries, futures, thresholds=(0.5,))
    assert cov["within_0.5m"] == 1.0 and cov["mean_ade_m"] < 0.1
    with pytest.raises(ValueError, match="at least as many futures"):
        cluster_futures(futures, 21)


def test_coverage_is_the_mean_ade_to_the_nearest_entry():
    vocab = np.zeros((2, 8, 3))
    vocab[1, :, 0] = 10.0
    fut = np.zeros((2, 8, 3))
    fut[0, :, 1] = 1.0  # 1 m beside entry 0
    fut[1, :, 0] = 7.0  # 3 m short of entry 1
    cov = coverage(vocab, fut, thresholds=(1.0, 2.0))
    assert cov["mean_ade_m"] == pytest.approx(2.0) and cov["within_1m"] == 0.5 and cov["within_2m"] == 0.5


def test_default_vocabulary_is_constant_turn_paths():
    spec = TrajectorySpec()
    v = default_vocabulary(10, spec)
    assert v.shape == (10, 8, 3)
    straight = v[np.abs(v[:, -1, 2]) < 1e-12]
    assert len(straight) and np.allclose(straight[:, :, 1], 0.0)
    fastest = v[np.argmax(v[:, -1, 0])]
    assert fastest[-1, 0] <= 20.0 * spec.horizon + 1e-9


# -- sparse MoE ------------------------------------------------------------------------------------
def test_sparse_moe_is_top_k_renormalised_plus_shared_expert():
    torch.manual_seed(0)
    moe = SparseMoEFFN(4, 6, num_experts=3, top_k=2)
    h = torch.randn(1, 5, 4)
    out, _ = moe(h, collect_stats=True)
    probs = torch.softmax(h @ moe.router.weight.t(), -1)[0]
    expected = moe.shared(h)[0].clone()
    for n in range(5):
        top = probs[n].topk(2).indices
        w = probs[n, top] / probs[n, top].sum()
        for wi, e in zip(w, top):
            z = torch.nn.functional.gelu(h[0, n] @ moe.w1[e] + moe.b1[e])
            expected[n] += wi * (z @ moe.w2[e] + moe.b2[e])
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)


def test_balance_loss_is_cv2_of_importance_plus_load():
    moe = SparseMoEFFN(2, 4, num_experts=2, top_k=1).train()
    with torch.no_grad():
        moe.router.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))
    h = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    _, aux = moe(h)
    # top-1 renormalised gates are exactly 1: importance = load = (3, 1); CV² = var/mean² = 1/4 each
    assert float(aux["balance_loss"].detach()) == pytest.approx(0.5, abs=1e-6)
    assert float(cv_squared(torch.tensor([3.0, 1.0]))) == pytest.approx(0.25)


def test_plan_scores_weigh_log_subscores_and_imitation():
    cfg = tiny_config(vocab_size=VOCAB, scoring=ScoringConfig(weights={"nc": 3.0}, imitation=0.1))
    logits = torch.zeros(2, len(METRICS))
    logits[1, METRICS.index("nc")] = -2.0
    imitation = torch.tensor([0.0, 1.0])
    got = plan_scores(logits, imitation, cfg)
    ls = torch.nn.functional.logsigmoid
    rest = (len(METRICS) - 1) * float(ls(torch.tensor(0.0)))
    lsm = torch.log_softmax(imitation, -1)
    assert float(got[0]) == pytest.approx(3 * float(ls(torch.tensor(0.0))) + rest + 0.1 * float(lsm[0]), abs=1e-5)
    assert float(got[1]) == pytest.approx(3 * float(ls(torch.tensor(-2.0))) + rest + 0.1 * float(lsm[1]), abs=1e-5)


# -- planner, checkpoint, export ------------------------------------------------------------------
def test_planner_shapes_round_trip_and_onnxruntime_parity(tmp_path):
    assert "trajmoe" in families()
    net = tiny_net()
    planner = TrajMoEPlanner(net)
    obs = observation(planner.rig, 0)
    res = planner.plan(obs)
    assert res.trajectory.poses.shape == (8, 3) and res.candidates.shape == (4, 8, 3)
    assert np.all(np.diff(res.candidate_scores) <= 0)
    np.testing.assert_allclose(res.trajectory.poses, res.candidates[0])
    assert res.info["entries_scored"] == VOCAB and set(res.info["predicted"]) == set(METRICS)
    assert len(res.moe["load"]) == 2 and all(abs(sum(layer) - 1) < 1e-6 for layer in res.moe["load"])
    obs.images.pop("front")
    with pytest.raises(ValueError, match="expected cameras"):
        planner.plan(obs)

    folder = planner.save(tmp_path / "m")
    eager = load_planner(folder)
    ort = load_planner(folder, backend="onnxruntime", threads=1)
    assert type(eager) is TrajMoEPlanner and ort.runtime["backend"] == "onnxruntime"
    for seed in range(3):
        o = observation(planner.rig, seed)
        a, b, c = planner.scores(*planner.inputs(o)), eager.scores(*eager.inputs(o)), ort.scores(*ort.inputs(o))
        torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)
        torch.testing.assert_close(a[0], c[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a[1], c[1], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(eager.plan(o).trajectory.poses, ort.plan(o).trajectory.poses, atol=1e-6)


def test_fitted_vocabulary_travels_in_the_checkpoint(tmp_path):
    net = tiny_net()
    vocab = default_vocabulary(VOCAB, net.cfg.spec)[::-1].copy()
    net.set_vocabulary(vocab)
    loaded = load_planner(TrajMoEPlanner(net).save(tmp_path / "m")).network()
    np.testing.assert_allclose(loaded.vocabulary.numpy(), vocab, atol=1e-4)
    with pytest.raises(ValueError, match="vocabulary"):
        net.set_vocabulary(vocab[:3])


def test_export_and_bench_cli(tmp_path, capsys):
    folder = TrajMoEPlanner(tiny_net()).save(tmp_path / "m")
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "x")]) == 0
    assert "score.onnx" in capsys.readouterr().out
    out = tmp_path / "b.json"
    argv = ["bench", "model", "--model", str(folder), "--iters", "3", "--warmup", "1", "--threads", "1"]
    assert main([*argv, "--backend", "onnxruntime", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["p50_ms"] > 0


# -- labels, supervised task, RL -----------------------------------------------------------------------
def test_labels_are_the_scorers_resumable_and_safe(bag, tmp_path):
    ds = dataset(bag)
    vocab = default_vocabulary(VOCAB, ds.spec)
    first = make_labels(ds, vocab, tmp_path, frames=[0, 3])
    assert first["scored"] == 2 and first["reused"] == 0
    again = make_labels(ds, vocab, tmp_path, frames=[0, 3, 5])
    assert again["scored"] == 1 and again["reused"] == 2
    assert label_frame(ds, 5, vocab, tmp_path) is False
    store = LabelStore(vocab, tmp_path)
    path = store.path(ds.scene(3))
    label = np.load(path, allow_pickle=False)
    from wamdiff_ros.scoring import score

    cols = score(vocab, ds.scene(3)).columns()
    np.testing.assert_allclose(label.astype(float), np.stack([cols[m.upper()] for m in METRICS], -1), atol=1e-3)
    assert label.shape == (VOCAB, len(METRICS)) and np.ptp(label[:, METRICS.index("ep")]) > 0
    other = LabelStore(vocab[::-1].copy(), tmp_path)
    assert other.folder != store.folder and other.read(ds.scene(3)) is None


def test_a_fitted_vocabulary_is_the_one_its_checkpoint_loads(tmp_path):
    """Training labels with the network's vocabulary; a loaded checkpoint must have the same one (same
    label folder), though the config stores entries rounded to 0.1 mm."""
    from wamdiff_ros.planners.trajmoe.labels import vocabulary_key

    net = tiny_net()
    fitted = np.random.default_rng(0).normal(0.0, 5.0, tuple(net.vocabulary.shape))
    net.set_vocabulary(fitted)
    loaded = TrajMoENet.load(net.save(tmp_path / "ckpt"))
    torch.testing.assert_close(loaded.vocabulary, net.vocabulary, rtol=0, atol=0)
    assert vocabulary_key(loaded.vocabulary.double().numpy()) == vocabulary_key(net.vocabulary.double().numpy())
    np.testing.assert_allclose(net.vocabulary.double().numpy(), fitted, atol=6e-5)


def test_a_label_job_is_a_small_picklable_task_that_reopens_the_dataset(bag, tmp_path):
    import pickle

    ds = dataset(bag)
    vocab = default_vocabulary(VOCAB, ds.spec)
    store = LabelStore(vocab, tmp_path)
    store.save_vocabulary()
    job = LabelJob(ds.source, (7, 2), str(store.folder))
    assert len(pickle.dumps(job)) < 1000
    assert run_label_job(pickle.loads(pickle.dumps(job))) == (True, True)
    assert run_label_job(LabelJob(ds.source, (2, 7, 4), str(store.folder))) == (False, False, True)
    np.testing.assert_array_equal(store.read(ds.scene(7)), score_vocabulary(vocab, ds.scene(7)))


@pytest.mark.slow
def test_labels_on_two_ray_workers_equal_in_process_labels(bag, tmp_path):
    pytest.importorskip("ray")
    from wamdiff_ros.distributed.fanout import Workers

    ds = dataset(bag)
    vocab = default_vocabulary(VOCAB, ds.spec)
    frames = [1, 2, 9, 0, 3, 4, 5, 6, 7, 8, 10, 11]  # two tasks (FRAMES_PER_JOB = 8), out of order
    make_labels(ds, vocab, tmp_path / "ray", frames=[2], workers=Workers(1))
    out = make_labels(ds, vocab, tmp_path / "ray", frames=frames, workers=Workers(2))
    assert out["scored"] == 11 and out["reused"] == 1
    make_labels(ds, vocab, tmp_path / "local", frames=frames)
    for i in frames:
        a, b = (
            LabelStore(vocab, tmp_path / "ray").read(ds.scene(i)),
            LabelStore(vocab, tmp_path / "local").read(ds.scene(i)),
        )
        np.testing.assert_array_equal(a, b)


def test_supervised_task_fits_vocabulary_and_reduces_loss(bag, tmp_path):
    net = tiny_net(scoring=ScoringConfig(candidates=4, vocab_dropout=0.5))
    task = TrajMoEPlanner(net).supervised_task(label_root=tmp_path)
    ds = dataset(bag)
    assert task.data_needs().scenes
    report = task.prepare(ds)
    assert report["vocabulary"]["entries"] == VOCAB and report["train_coverage"]["futures"] == len(ds)
    assert report["train_coverage"]["mean_ade_m"] < 1.0
    np.testing.assert_allclose(net.vocabulary.numpy(), np.asarray(net.cfg.vocabulary), atol=1e-4)
    samples = [ds[i] for i in (0, 5, 13, 20)]
    batch = task.collate(samples, [np.random.default_rng(i) for i in range(4)])
    assert batch["entries"].shape == (4, VOCAB // 2) and batch["labels"].shape == (4, VOCAB // 2, len(METRICS))
    torch.testing.assert_close(batch["imitation"].sum(-1), torch.ones(4))
    futures = dataset_futures(ds)
    for row, i in zip(batch["entries"], (0, 5, 13, 20)):
        nearest = np.linalg.norm(net.vocabulary.numpy()[..., :2] - futures[i][None, :, :2], axis=-1).mean(1).argmin()
        assert nearest in row.tolist()
    net.train()
    opt = torch.optim.Adam(task.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, parts = task.loss(batch)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in task.trainable_parameters() if p.grad is not None)
        opt.step()
        losses.append(float(loss.detach()))
    assert parts["balance"] > 0 and set(parts) >= {"score", "imitation", "bce_nc"}
    assert losses[-1] < 0.8 * losses[0]


def test_two_rl_steps_on_gaussian_score_heads(bag, tmp_path):
    folder = TrajMoEPlanner(tiny_net()).save(tmp_path / "m")
    planner = load_planner(folder)
    policy = planner.rl_policy(entries=4)
    obs = dataset(bag).observation(0)
    ro = policy.sample(obs, 6, torch.Generator().manual_seed(0))
    assert ro.actions.shape == (6, 4, len(METRICS)) and ro.poses.shape == (6, 8, 3)
    mu, sigma = policy._gaussian(policy.net, ro.context)
    expected = torch.distributions.Normal(mu, sigma).log_prob(ro.actions).sum(-1)
    torch.testing.assert_close(policy.logprobs(ro), expected)
    r = ro.reward(dataset(bag).scene(0))
    assert r.shape == (6,) and np.all(r <= 0) and np.ptp(r) > 0
    settings = RLSettings(
        group_size=4, scenes_per_step=2, every=8, epochs=4, max_steps=2, lr=1e-2, kl_beta=0.01, threads=1, val_frames=2,
        val_every_steps=1, save_every_steps=1, trainable="all", reward=RewardConfig(),
    )  # fmt: skip
    trainer = build_trainer(folder, [str(bag)], tmp_path / "rl", settings, [str(bag)], cache=False, progress=False)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    summary = trainer.run()
    assert summary["steps"] == 2
    after = trainer.net.state_dict()
    assert not torch.equal(before["sigma_head.bias"], after["sigma_head.bias"])
    assert type(load_planner(tmp_path / "rl" / "last")) is TrajMoEPlanner


def test_gaussian_kl_is_the_closed_form_and_reaches_the_objective(bag, tmp_path):
    from wamdiff_ros.training.rl.objectives import grpo_loss
    from wamdiff_ros.training.rl.trainer import reference_copy

    policy = TrajMoEPlanner(tiny_net()).rl_policy(entries=4)
    ref = reference_copy(policy.net)
    ro = policy.sample(dataset(bag).observation(0), 3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(policy.kl(ro, ref), torch.zeros(3, 4))
    with torch.no_grad():
        policy.net.sigma_head.bias.add_(0.3)
        policy.net.score_head.bias.add_(0.5)
    mu, sigma = policy._gaussian(policy.net, ro.context)
    rmu, rsigma = policy._gaussian(ref, ro.context)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(rmu, rsigma)
    )
    kl = policy.kl(ro, ref)
    torch.testing.assert_close(kl, expected.sum(-1).expand(3, -1).detach(), rtol=1e-5, atol=1e-6)
    logp = policy.logprobs(ro)
    adv = torch.tensor([1.0, 0.0, -1.0])
    base, _ = grpo_loss(logp, logp.detach(), adv, ro.mask)
    with_kl, stats = grpo_loss(logp, logp.detach(), adv, ro.mask, beta=0.5, kl=kl)
    assert float(with_kl - base) == pytest.approx(0.5 * float(kl.mean()), rel=1e-5)
    assert stats["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)


def test_rl_config_loads_and_its_options_reach_the_policy():
    settings = RLSettings.from_yaml("training/rl_trajmoe_small.yaml")
    assert settings.algorithm == "grpo" and settings.trainable == "all"
    policy = TrajMoEPlanner(tiny_net()).rl_policy(**settings.policy_options())
    assert policy.temperature == settings.temperature
    assert len(policy.trainable_parameters(policy.net, "heads")) == 6  # three heads, weight and bias each


def test_eval_cli_reports_expert_load_and_entropy_per_scenario(bag, tmp_path):
    folder = TrajMoEPlanner(tiny_net()).save(tmp_path / "m")
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", str(folder), "--data", str(bag), "--json", str(out), "--every", "4"]
    assert main([*argv, "--no-cache", "--threads", "1", "--mode", "fast"]) == 0
    agg = json.loads(out.read_text())["results"]["trajmoe"]["aggregate"]
    assert set(agg["by_scenario"]) == {"highway", "cut_in"}
    for scenario in agg["by_scenario"].values():
        moe = scenario["moe"]
        assert len(moe["load_mean"]) == 2 and all(abs(sum(layer) - 1) < 1e-3 for layer in moe["load_mean"])
        assert 0 < moe["entropy_mean"] <= np.log(4) + 1e-9


def test_inference_on_a_configured_subset_of_the_vocabulary(tmp_path):
    net = tiny_net(scoring=ScoringConfig(candidates=4, inference_size=8))
    planner = TrajMoEPlanner(net)
    res = planner.plan(observation(planner.rig, 0))
    assert res.info["entries_scored"] == 8 and res.info["entry"] < 8
    outputs = {t.name: tuple(t.shape) for t in planner.graphs()[0].spec().outputs}
    assert outputs == {"plan_scores": (1, 8), "logits": (1, 8, len(METRICS))}
    ort = load_planner(planner.save(tmp_path / "m"), backend="onnxruntime", threads=1)
    ranked, logits, _ = ort.scores(*ort.inputs(observation(planner.rig, 1)))
    assert ranked.shape == (8,) and logits.shape == (8, len(METRICS))


def test_training_config_builds_the_task():
    from wamdiff_ros.config import load_yaml
    from wamdiff_ros.planners.base import untrained_planner
    from wamdiff_ros.planners.trajmoe.task import TrajMoETask

    doc = load_yaml("training/trajmoe_small.yaml")
    task = untrained_planner(doc["model"]).supervised_task(**doc["family"])
    assert isinstance(task, TrajMoETask) and task.kmeans_iterations == 25 and task.data_needs().scenes
    assert task.cfg.vocab_size == 4096 and task.cfg.moe.num_experts == 4 and task.cfg.decoder_layers == 2


def test_wamdiff_train_runs_the_family_through_the_one_training_loop(bag, tmp_path):
    import yaml

    from wamdiff_ros.config import load_yaml
    from wamdiff_ros.models.config import plain

    cfg = tiny_config(vocab_size=VOCAB)
    model_doc = {k: v for k, v in cfg.to_dict().items() if k != "vocabulary"}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(plain(model_doc)))
    train_doc = dict(load_yaml("training/trajmoe_small.yaml"))
    train_doc.update(model=str(tmp_path / "model.yaml"), batch_size=4, val_loss_samples=4, warmup_steps=1)
    train_doc["family"]["label_root"] = str(tmp_path / "labels")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train_doc))
    argv = ["train", "--config", str(tmp_path / "train.yaml"), "--data", str(bag), "--val", str(bag)]
    argv += ["--out", str(tmp_path / "run"), "--max-steps", "2", "--val-frames", "2", "--threads", "1"]
    assert main([*argv, "--no-cache", "--no-progress"]) == 0
    trained = load_planner(tmp_path / "run" / "last")
    assert type(trained) is TrajMoEPlanner
    fitted = trained.network().vocabulary.numpy()
    assert not np.allclose(fitted, default_vocabulary(VOCAB, cfg.spec), atol=1e-3)
    futures = dataset_futures(dataset(bag, scenes=False))
    assert coverage(fitted, futures)["mean_ade_m"] < 1.0
    # the loaded vocabulary is the one training labelled: its label folder holds every scored frame
    loaded_store = LabelStore(trained.network().vocabulary.double().numpy(), tmp_path / "labels")
    assert len(list(loaded_store.folder.glob("*.npy"))) >= 4
    again = make_labels(dataset(bag), fitted.astype(np.float64), tmp_path / "labels", frames=[0, 1, 2, 3])
    assert again["folder"] == str(loaded_store.folder)
    # fine-tuning on other data keeps the vocabulary its weights and labels belong to
    other = write_tiny_bag(tmp_path / "other.mcap", speed=15.0)
    argv = ["train", "--init", str(tmp_path / "run" / "last"), "--config", str(tmp_path / "train.yaml")]
    argv += ["--data", str(other), "--out", str(tmp_path / "tuned"), "--max-steps", "1", "--val-frames", "0"]
    assert main([*argv, "--threads", "1", "--no-cache", "--no-progress"]) == 0
    assert np.array_equal(load_planner(tmp_path / "tuned" / "last").network().vocabulary.numpy(), fitted)
    # into a model config of its own (no fitted vocabulary), the vocabulary is fitted on the data
    argv = ["train", "--init", str(tmp_path / "run" / "last"), "--model", str(tmp_path / "model.yaml")]
    argv += ["--config", str(tmp_path / "train.yaml"), "--data", str(other), "--out", str(tmp_path / "rebased")]
    assert main([*argv, "--max-steps", "1", "--val-frames", "0", "--threads", "1", "--no-cache", "--no-progress"]) == 0
    rebased = load_planner(tmp_path / "rebased" / "last").network().vocabulary.numpy()
    assert not np.allclose(rebased, default_vocabulary(VOCAB, cfg.spec), atol=1e-3)
