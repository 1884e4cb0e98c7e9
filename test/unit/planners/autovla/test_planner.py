"""The AutoVLA family: K-disk codebook and tokenising against hand-computed values, the KV-cache decode
against the teacher-forced pass, the model-chosen mode and the budget veto, save/load, ONNX Runtime
parity of both graphs, supervised steps that lower the loss, and GRPO steps whose log-probabilities
reproduce the sampler's."""

import json
import math

import numpy as np
import pytest
import torch

from unit.helpers.runtime import observation
from unit.helpers.training import write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.planners import families, load_planner
from wamdiff_ros.planners.autovla import AutoVLAPlanner
from wamdiff_ros.planners.autovla.codebook import ActionCodebook, Box, corner_distance, k_disk, primitives_of
from wamdiff_ros.planners.autovla.config import LayoutConfig, tiny_config
from wamdiff_ros.planners.autovla.net import (
    ACTION,
    MODE_POS,
    REASON,
    REASON_END,
    AutoVLANet,
    placeholder_primitives,
)
from wamdiff_ros.planners.autovla.policy import LengthPenalty
from wamdiff_ros.sim.language import vocabulary
from wamdiff_ros.training.rl.rewards import RewardConfig
from wamdiff_ros.training.rl.session import build_trainer
from wamdiff_ros.training.rl.settings import RLSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_net(seed: int = 0, **overrides) -> AutoVLANet:
    torch.manual_seed(seed)
    return AutoVLANet(tiny_config(vocab=vocabulary(), **overrides)).eval()


def force_mode(net: AutoVLANet, think: bool) -> None:
    """Make the first answer token [THINK] (or [ACT]) whatever the input."""
    with torch.no_grad():
        net.head.bias[net.think_id] = 50.0 if think else -50.0
        net.head.bias[net.act_id] = 0.0


# -- codebook ------------------------------------------------------------------------------------------
def test_corner_distance_of_a_rotation_is_the_far_corner_arc():
    box = Box(4.8, 2.0)
    half_diag = math.hypot(2.4, 1.0)
    d = corner_distance(np.zeros(3), np.array([0.0, 0.0, 0.02]), box)
    assert d == pytest.approx(2 * half_diag * math.sin(0.01), rel=1e-9)  # 0.052 m > 0.05
    assert corner_distance(np.zeros(3), np.array([0.03, 0.04, 0.0]), box) == pytest.approx(0.05)


def test_k_disk_covers_every_primitive_within_tolerance_and_starts_with_no_motion():
    prims = np.array(
        [[0.01, 0.0, 0.0], [1.0, 0.0, 0.0], [1.03, 0.0, 0.0], [2.0, 0.0, 0.0], [0, 0, 0.015], [0, 0, 0.02]]
    )
    book = k_disk(prims, size=10, tolerance=0.05, box=Box())
    np.testing.assert_array_equal(book[0], 0.0)
    # no motion covers 0.01 m and 0.015 rad (0.039 m at the corners) but not 0.02 rad (0.052 m);
    # 1.0 and 1.03 share one disk; 2.0 needs its own
    assert len(book) == 4
    d = corner_distance(prims[:, None], book[None], Box()).min(1)
    assert (d <= 0.05).all()
    assert len(k_disk(prims, size=2, tolerance=0.05, box=Box())) == 2
    with pytest.raises(ValueError, match="tolerance"):
        k_disk(prims, size=4, tolerance=0.0, box=Box())


def test_codebook_composes_step_by_step_and_tokenises_back():
    book = ActionCodebook(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, math.pi / 4], [2.0, 0.0, 0.0]]))
    poses = book.decode(np.array([1, 1, 2]))
    h = math.sqrt(0.5)
    expected = [[1, 0, math.pi / 4], [1 + h, h, math.pi / 2], [1 + h, h + 2, math.pi / 2]]
    np.testing.assert_allclose(poses, expected, atol=1e-12)
    np.testing.assert_array_equal(book.encode(poses), [1, 1, 2])
    np.testing.assert_allclose(primitives_of(poses), book.primitives[[1, 1, 2]], atol=1e-12)
    assert book.reconstruction_error(poses[None])["max_m"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="token ids"):
        book.decode(np.array([3]))


def test_tokenising_feeds_back_the_composed_pose():
    """Steps of 1.4 m on a 1 m / 2 m codebook: per-step rounding would always pick 1 m (5.6 -> 4 m after
    four steps); feeding back the composed pose alternates and ends within half a step."""
    book = ActionCodebook(np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]))
    traj = np.stack([1.4 * np.arange(1, 5), np.zeros(4), np.zeros(4)], 1)
    rec = book.decode(book.encode(traj))
    assert abs(rec[-1, 0] - 5.6) <= 0.5


# -- network and answer layout ---------------------------------------------------------------------------
def test_answer_layout_and_kinds():
    net = tiny_net(layout=LayoutConfig(prompt_len=6, reasoning_len=2))
    ids = net.answer_ids("slow down now", np.array([3, 0]))
    words = net.text.encode("slow down")
    assert ids == [net.think_id, *words, net.act_id, net.action_offset + 3, net.action_offset]
    assert net.answer_kinds(ids) == [MODE_POS, REASON, REASON, REASON_END, ACTION, ACTION]
    assert net.answer_ids("", np.array([1])) == [net.act_id, net.action_offset + 1]
    prompt = net.prompt_ids("left", "slow down")
    assert prompt[0] == net.text.bos_id and prompt[2] == net.text.sep_id and len(prompt) == 6


@pytest.mark.parametrize("slow", [True, False])
def test_cached_decode_equals_the_teacher_forced_pass(slow):
    """Slow: [THINK] is fed over the prefill's speculative [ACT]; fast: the prefill's [ACT] is used as is,
    so decoding starts at the first action."""
    net = tiny_net(1)
    net.set_codebook(placeholder_primitives(32)[:24])
    assert net.live_vocab == net.vocab_size - 8
    planner = AutoVLAPlanner(net)
    inputs = planner.inputs(observation(net.cfg.rig_obj, 3))
    ans = planner.answer(inputs, lambda p: (slow, net.cfg.layout.reasoning_len))
    assert ans.slow == slow and len(ans.actions) == 8
    assert ans.decode_calls == len(ans.tokens) - 1 - (not slow)
    with torch.no_grad():
        full = net.forward_train(*inputs, torch.tensor([ans.tokens]))[0]
        logits, act_logits, cache = net.prefill(*inputs)
        steps, pos, fed = [logits[0]], net.cfg.prefix_len, ans.tokens[:-1]
        if not slow:
            steps, pos, fed = [*steps, act_logits[0]], pos + 1, fed[1:]
        for t in fed:
            logits, cache = net.decode(t, pos, cache)
            steps.append(logits[0])
            pos += 1
    torch.testing.assert_close(torch.stack(steps), full[:, : net.live_vocab], atol=1e-5, rtol=1e-5)


# -- planner ----------------------------------------------------------------------------------------------
def test_the_model_chooses_the_mode_and_the_budget_can_veto_slow():
    net = tiny_net(2)
    planner = AutoVLAPlanner(net)
    obs = observation(net.cfg.rig_obj, 0)
    force_mode(net, think=True)
    res = planner.plan(obs)
    assert res.mode == "slow" and res.info["p_think"] > 0.99 and "reasoning" in res.timings_ms
    assert res.trajectory.poses.shape == (8, 3) and res.candidates.shape == (1, 8, 3)
    assert len(res.confidences) == 8 and 0 < res.candidate_scores[0] <= 1
    planner.gate.per_call_ms["reasoning"] = 1e4
    vetoed = planner.plan(obs, budget_ms=50.0)
    assert vetoed.mode == "fast" and "slow wanted" in vetoed.info["gate"]
    force_mode(net, think=False)
    assert planner.plan(obs).mode == "fast"
    planner.set_mode("slow")
    assert planner.plan(obs).mode == "slow"
    with pytest.raises(ValueError, match="cameras"):
        planner.plan(observation(tiny_config(rig={"name": "x", "cameras": [dict(name="a", width=64, height=32,
            fov_deg=90.0, position=[0, 0, 0], rpy=[0, 0, 0])]}).rig_obj))  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny model whose fitted codebook uses 20 of its 32 action tokens (decoding scores the live
    vocabulary only)."""
    net = tiny_net(3)
    net.set_codebook(placeholder_primitives(32)[:20])
    with torch.no_grad():  # P(THINK) near 0.5, and reasoning words compete with [ACT]
        net.head.bias[net.think_id] = net.head.bias[net.act_id] + 0.3
    return AutoVLAPlanner(net).save(tmp_path_factory.mktemp("autovla") / "model")


def test_save_load_round_trip_and_registry(model):
    assert "autovla" in families()
    a = load_planner(model)
    assert type(a) is AutoVLAPlanner and a.network().codebook.primitives.shape == (20, 3)
    b = AutoVLANet.load(model)
    for k, v in a.network().state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k])
    obs = observation(a.rig, 1)
    np.testing.assert_array_equal(a.plan(obs).trajectory.poses, load_planner(model).plan(obs).trajectory.poses)


@pytest.mark.slow
def test_onnxruntime_parity_of_both_graphs_and_plans(model, tmp_path, capsys):
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "onnx")]) == 0
    text = capsys.readouterr().out
    assert "prefill.onnx" in text and "decode.onnx" in text and "FAILED" not in text
    eager = load_planner(model)
    ort = load_planner(model, backend="onnxruntime", threads=1)
    assert ort.runtime["backend"] == "onnxruntime"
    reasoned = []
    for mode in ("fast", "slow", "adaptive"):
        eager.set_mode(mode)
        ort.set_mode(mode)
        for seed in range(2):
            obs = observation(eager.rig, seed)
            a, b = eager.plan(obs), ort.plan(obs)
            assert a.mode == b.mode and a.info["actions"] == b.info["actions"] and a.reasoning == b.reasoning
            np.testing.assert_allclose(a.trajectory.poses, b.trajectory.poses, atol=1e-6)
            assert abs(a.info["p_think"] - b.info["p_think"]) <= 1e-4
            reasoned.append(a.reasoning)
    assert any(reasoned)


def test_graph_outputs_match_onnxruntime_within_1e_4(model, tmp_path):
    from wamdiff_ros.runtime.backends import make_backends

    planner = load_planner(model)
    graphs = planner.graphs()
    backends, _ = make_backends(graphs, "onnxruntime", "h", "autovla", export_dir=tmp_path / "x", threads=1)
    for g in graphs:
        for seed in range(2):
            x = g.sample_inputs(seed)
            with torch.no_grad():
                ref = g.module(*x.values())
            out = backends[g.name].run(x)
            for name, r in zip(g.output_names, ref):
                assert (out[name].float() - r).abs().max().item() <= 1e-4, (g.name, name)


# -- training ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_tiny_bag(tmp_path_factory.mktemp("autovla_bag") / "tiny.mcap")


def test_supervised_prepare_fits_the_codebook_and_steps_lower_the_loss(bag):
    from wamdiff_ros.data.dataset import DrivingDataset

    net = tiny_net(4)
    planner = AutoVLAPlanner(net)
    task = planner.supervised_task()
    needs = task.data_needs()
    ds = DrivingDataset([bag], spec=needs.spec, history=needs.history, cache_dir=None, rig=needs.rig, scenes=False)
    report = task.prepare(ds)
    assert 1 < report["codebook_tokens"] <= 32 and 0 < report["slow_targets"] <= report["annotated"] < 1
    assert net.cfg.thinking.min_deviation_m == report["min_deviation_m"] >= 0
    np.testing.assert_array_equal(net.codebook.primitives[0], 0.0)
    assert net.cfg.codebook.primitives == net.codebook.primitives.tolist()
    samples = [ds[i] for i in range(0, len(ds), max(1, len(ds) // 6))]
    batch = task.collate(samples, [np.random.default_rng(i) for i in range(len(samples))])
    assert (batch.kinds == MODE_POS).sum() == len(samples) and (batch.kinds == REASON).any()
    opt = torch.optim.Adam(task.trainable_parameters(), lr=3e-3)
    net.train()
    losses = []
    for _ in range(8):
        loss, parts = task.loss(batch)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in task.trainable_parameters() if p.grad is not None)
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0] and set(parts) >= {"action_ce", "reasoning_ce"}


def test_slow_targets_are_the_annotated_frames_departing_most_from_the_twist_path():
    from wamdiff_ros.planners.autovla.task import fit_min_deviation, twist_deviation
    from wamdiff_ros.types import EgoState, TrajectorySpec

    spec = TrajectorySpec()
    ego = EgoState(pose=[0.0, 0.0, 0.0], velocity=[10.0, 0.0])
    future = np.stack([10.0 * spec.times, np.zeros(8), np.zeros(8)], 1)
    assert twist_deviation(future, ego, spec) == pytest.approx(0.0, abs=1e-9)
    future[-1, 1] = 3.0
    assert twist_deviation(future, ego, spec) == pytest.approx(3.0)
    devs = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0, 8.0])
    annotated = np.array([True, True, True, True, True, True, False, False])
    assert fit_min_deviation(devs, annotated, 0.25) == 3.0  # 2 of 8 frames: the annotated 5 m and 4 m
    assert fit_min_deviation(devs, annotated, 0.9) == 0.0  # fewer annotated frames than wanted: all of them
    assert fit_min_deviation(devs, annotated, 0.0) == 5.0  # none


def test_length_penalty_applies_only_to_slow_answers():
    pen = LengthPenalty()
    assert pen("x" * 400, slow=True) == pytest.approx(0.15)
    assert pen("x" * 400, slow=False) == 0.0
    assert pen("x" * 900, slow=True) == pytest.approx(0.3 / (1 + math.exp(-1.0)))


def test_policy_logprobs_reproduce_the_sampler(model):
    planner = load_planner(model)
    policy = planner.rl_policy(temperature=1.0)
    obs = observation(planner.rig, 2)
    ro = policy.sample(obs, 6, torch.Generator().manual_seed(0))
    assert ro.actions.shape[0] == 6 and ro.poses.shape == (6, 8, 3) and ro.reward_offset.shape == (6,)
    net = planner.network()
    assert set(ro.actions[:, 0].tolist()) == {net.think_id, net.act_id}  # the model's choice is sampled
    assert bool((ro.reward_offset < 0).any()) and bool((ro.reward_offset == 0).any())
    # the sampler's own log-probs: rerun the same draws
    from wamdiff_ros.planners.autovla.decoding import decode_answer

    g = torch.Generator().manual_seed(0)
    inputs = policy.planner.inputs(obs)
    answers = [decode_answer(net, policy.kind_masks, inputs, 8, net.cfg.layout.reasoning_len, 1.0, g) for _ in range(6)]
    with torch.no_grad():
        lp = policy.logprobs(ro)
    for i, a in enumerate(answers):
        assert a.tokens == ro.actions[i, : len(a.tokens)].tolist()
        torch.testing.assert_close(lp[i, : len(a.tokens)], torch.tensor(a.logp), atol=1e-4, rtol=0)
        assert ro.reward_offset[i] == (-LengthPenalty()(planner.network().text.decode(
            [t for t, k in zip(a.tokens, a.kinds) if k == REASON and t != net.act_id]), a.slow))  # fmt: skip


def test_two_grpo_steps(model, bag, tmp_path):
    settings = RLSettings(
        algorithm="grpo", group_size=4, scenes_per_step=2, every=8, epochs=4, max_steps=2, lr=1e-3, kl_beta=0.04,
        threads=1, val_frames=2, val_every_steps=1, save_every_steps=1, trainable="all",
        reward=RewardConfig(scale=10.0),
    )  # fmt: skip
    trainer = build_trainer(model, [str(bag)], tmp_path / "rl", settings, [str(bag)], cache=False, progress=False)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    summary = trainer.run()
    assert summary["steps"] == 2
    hist = trainer.state["history"]
    assert all(h["kl"] >= 0 and np.isfinite(h["loss"]) for h in hist)
    # the length penalty of slow answers lowers the reward below PDMS·10
    assert all(h["reward_mean"] < 10.0 * h["pdms_mean"] - 1e-6 for h in hist)
    after = trainer.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert type(load_planner(tmp_path / "rl" / "last")) is AutoVLAPlanner
    json.loads((tmp_path / "rl" / "history.json").read_text())


@pytest.mark.slow
def test_eval_and_bench_clis_run_the_family(model, bag, tmp_path):
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", str(model), "--data", str(bag), "--json", str(out), "--every", "8"]
    assert main([*argv, "--no-cache", "--threads", "1", "--mode", "fast,adaptive"]) == 0
    report = json.loads(out.read_text())
    assert report["planner"]["family"] == "autovla"
    rows = json.dumps(report["results"])
    assert "slow_rate" in rows and "by_scenario" in rows
    bench = tmp_path / "bench.json"
    argv = ["bench", "model", "--model", str(model), "--iters", "2", "--warmup", "1", "--threads", "1"]
    assert main([*argv, "--modes", "fast,slow", "--backend", "onnxruntime", "--json", str(bench)]) == 0
    rows = json.loads(bench.read_text())["rows"]
    assert {r["mode"] for r in rows} == {"fast", "slow"} and all(r["p50_ms"] > 0 for r in rows)


@pytest.mark.slow
def test_wamdiff_train_fits_the_codebook_and_fine_tuning_keeps_it(bag, tmp_path):
    import yaml

    from wamdiff_ros.models.config import plain

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(plain(tiny_config(vocab=vocabulary()).to_dict())))
    argv = ["train", "--model", str(tmp_path / "tiny.yaml"), "--config", "training/autovla_small.yaml"]
    argv += ["--data", str(bag), "--val", str(bag), "--out", str(tmp_path / "run"), "--max-steps", "3"]
    assert main([*argv, "--batch-size", "4", "--no-cache", "--val-frames", "2", "--no-progress", "--threads", "1"]) == 0
    trained = load_planner(tmp_path / "run" / "last")
    book = trained.network().codebook
    assert len(book) < 32 and trained.cfg.thinking.min_deviation_m is not None
    res = trained.plan(observation(trained.rig, 0))
    assert all(0 <= a < len(book) for a in res.info["actions"])

    other = write_tiny_bag(tmp_path / "other.mcap", speed=15.0)
    argv = ["train", "--init", str(tmp_path / "run" / "last"), "--data", str(other), "--out", str(tmp_path / "tuned")]
    assert main([*argv, "--max-steps", "1", "--batch-size", "4", "--no-cache", "--no-progress", "--threads", "1"]) == 0
    tuned = load_planner(tmp_path / "tuned" / "last")
    assert np.array_equal(tuned.network().codebook.primitives, book.primitives)
    assert tuned.cfg.thinking.min_deviation_m == trained.cfg.thinking.min_deviation_m
