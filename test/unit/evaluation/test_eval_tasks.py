"""``wamdiff eval`` as fan-out tasks (one per run and episode): the chunks give the rows of one pass
over all frames, each task plans with a fresh copy of the model, and the JSON of ``--workers 2`` (Ray)
equals that of ``--workers 1`` but for the timing fields."""

import json

import pytest
import torch

from unit.helpers.training import tiny_cfg, write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.evaluation import evaluate_open_loop
from wamdiff_ros.evaluation.open_loop import episode_chunks, frame_indices
from wamdiff_ros.evaluation.tasks import EvalJob, EvalSource, evaluate_job, evaluate_runs, open_runs
from wamdiff_ros.planners.wamdiff.config import DecodingConfig
from wamdiff_ros.planners.wamdiff.net import WamDiffNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_tasks")
    bag = write_tiny_bag(root / "tiny.mcap", ticks=46)  # two episodes of 6 samples
    torch.manual_seed(0)
    greedy = WamDiffNet(tiny_cfg()).save(root / "greedy")
    torch.manual_seed(0)
    sampled = WamDiffNet(
        tiny_cfg(decoding=DecodingConfig(fast_steps=4, slow_steps=4, reasoning_steps=3, temperature=1.0))
    )
    return str(bag), str(greedy), str(sampled.save(root / "sampled"))


def _untimed(doc, drop=("latency_ms",)):
    """``doc`` without its timing fields (``latency_ms``) or other keys in ``drop``."""
    if isinstance(doc, dict):
        return {k: _untimed(v, drop) for k, v in doc.items() if k not in drop}
    if isinstance(doc, list):
        return [_untimed(v, drop) for v in doc]
    return doc


def test_episode_chunks_cut_where_the_episode_changes(setup):
    bag, greedy, _ = setup
    runs = open_runs(EvalSource((bag,), greedy, ("fast",), cache=False))
    indices = frame_indices(runs.dataset, every=2)
    assert indices == [0, 2, 4, 6, 8, 10]
    assert episode_chunks(runs.dataset, indices) == [[0, 2, 4], [6, 8, 10]]
    assert episode_chunks(runs.dataset, [0, 6, 1, 7]) == [[0], [6], [1], [7]]
    with pytest.raises(ValueError, match="every: expected an integer >= 1, got 0"):
        frame_indices(runs.dataset, every=0)


def test_tasks_merge_to_one_pass_over_all_frames(setup):
    """EC chains frames within an episode only, so per-episode tasks give the rows and aggregate of one
    evaluate_open_loop pass (a deterministic model, forced modes and a reference planner)."""
    bag, greedy, _ = setup
    runs = open_runs(EvalSource((bag,), greedy, ("fast", "slow"), ("constant_velocity",), cache=False))
    assert runs.labels == ["wamdiff/fast", "wamdiff/slow", "constant_velocity"]
    frames: dict[str, list] = {label: [] for label in runs.labels}
    results = evaluate_runs(runs, every=1, progress=False, on_rows=lambda label, rows: frames[label].extend(rows))
    assert [r["index"] for r in frames["wamdiff/fast"]] == list(range(12))
    for label in runs.labels:
        whole = evaluate_open_loop(runs.fresh(label), runs.dataset, 1)
        drop = ("latency_ms", "p_complex", "fast_confidence")  # the gate's inputs: kept by wamdiff eval only
        assert _untimed(results[label], drop) == _untimed({"aggregate": whole["aggregate"]}, drop)
        assert _untimed(frames[label], drop) == _untimed(whole["frames"], drop)
    assert {r["mode"] for r in frames["wamdiff/slow"]} == {"slow"}
    assert "p_complex" in frames["wamdiff/fast"][0] and "p_complex" not in frames["constant_velocity"][0]
    assert any(r["EC"] < 1.0 for r in frames["wamdiff/fast"])  # EC does chain consecutive frames
    with pytest.raises(ValueError, match="unknown run 'expert_log'"):
        runs.fresh("expert_log")


def test_each_task_plans_with_a_fresh_copy_of_the_model(setup):
    """A sampling model (temperature 1): an episode's rows do not depend on what the process planned
    before, and the loaded model is never planned with."""
    bag, _, sampled = setup
    source = EvalSource((bag,), sampled, ("fast",), cache=False)
    second = EvalJob(source, "wamdiff/fast", (6, 7, 8))
    alone = evaluate_job(second).rows
    evaluate_job(EvalJob(source, "wamdiff/fast", (0, 1, 2)))
    after = evaluate_job(second).rows
    assert _untimed(after) == _untimed(alone)
    runs = open_runs(source)
    shared = runs.fresh("wamdiff/fast")
    first = evaluate_open_loop(shared, runs.dataset, 1, max_frames=9)["frames"][6:]
    assert _untimed(first) != _untimed(alone)  # one planner over frames 0-8 draws other samples for 6-8


def _eval(bag, model, out, *extra):
    """The JSON of ``wamdiff eval`` with each run's per-frame rows (``--frames``) as ``results[run]["frames"]``."""
    frames = out.with_suffix(".jsonl")
    argv = ["eval", "--model", model, "--data", bag, "--json", str(out), "--mode", "fast,adaptive"]
    argv += ["--baseline", "constant_velocity", "expert", "--frames", str(frames), "--no-cache", "--threads", "1"]
    assert main([*argv, *extra]) == 0
    doc = json.loads(out.read_text())
    for line in frames.read_text().splitlines():
        row = json.loads(line)
        doc["results"][row.pop("run")].setdefault("frames", []).append(row)
    return doc


def test_eval_cli_in_process(setup, tmp_path, capsys):
    bag, greedy, _ = setup
    doc = _eval(bag, greedy, tmp_path / "one.json", "--workers", "1", "--every", "3")
    assert set(doc["results"]) == {"wamdiff/fast", "wamdiff/adaptive", "constant_velocity", "expert_log"}
    assert [r["index"] for r in doc["results"]["expert_log"]["frames"]] == [0, 3, 6, 9]
    assert main(["eval", "--model", greedy, "--data", bag, "--json", str(tmp_path / "x.json"), "--threads", "0"]) == 2
    assert "--threads: expected >= 1, got 0" in capsys.readouterr().err


def test_an_interrupted_eval_leaves_no_frames_file(setup, tmp_path, monkeypatch):
    """Rows stream to a temporary file that is renamed only when every task is done."""
    from wamdiff_ros.evaluation import tasks

    bag, greedy, _ = setup
    calls = []

    def second_task_fails(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate_job(job)

    monkeypatch.setattr(tasks, "evaluate_job", second_task_fails)
    argv = ["eval", "--model", greedy, "--data", bag, "--json", str(tmp_path / "e.json"), "--mode", "fast"]
    assert main([*argv, "--frames", str(tmp_path / "e.jsonl"), "--no-cache", "--threads", "1", "--workers", "1"]) == 130
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eval_on_two_ray_workers_equals_one_worker(setup, tmp_path):
    """A sampling model (temperature 1) and reference planners, 2 episodes each: 8 tasks on 2 workers."""
    ray = pytest.importorskip("ray")
    bag, _, sampled = setup
    one = _eval(bag, sampled, tmp_path / "one.json", "--workers", "1")
    assert not ray.is_initialized()
    two = _eval(bag, sampled, tmp_path / "two.json", "--workers", "2")
    assert not ray.is_initialized()  # the command's local Ray is stopped again
    assert one["results"]["wamdiff/fast"]["aggregate"]["frames"] == 12
    assert _untimed(two) == _untimed(one)
    assert two["results"]["wamdiff/fast"]["frames"][0]["latency_ms"] > 0
