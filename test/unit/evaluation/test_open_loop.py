"""Open-loop evaluation over a small synthetic bag: per-frame and aggregate metrics, EC chaining, MoE
statistics, ``wamdiff replay`` outputs, and the middleware-free pieces of ``wamdiff bench node``."""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pytest

from wamdiff_ros.bench import node as node_bench
from wamdiff_ros.data.bag import BagWriter
from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.data.raw_bag import RawBagReader
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.evaluation import RunningAggregate, aggregate, evaluate_open_loop
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.reporting.plots import plot_bev
from wamdiff_ros.rig import CameraSpec, Rig
from wamdiff_ros.types import TrajectorySpec

RIG = Rig("small", (CameraSpec("front", 48, 32, 90.0, (1.5, 0.0, 1.6)),))
SPEC = TrajectorySpec(8, 0.5)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "drive.mcap"
    lanes = synthetic_lanes()
    with BagWriter(path, RIG) as w:
        for k, frame in enumerate(synthetic_frames("a", 55)):  # 5.4 s: 15 frames have a 4 s future
            w.write_tick(frame, synthetic_images(RIG, k), lanes if k == 0 else None)
    return w.bag_dir


@pytest.fixture(scope="module")
def dataset(bag):
    return DrivingDataset([bag], spec=SPEC, history=0, cache_dir=None, rig=RIG)


class Swerve(ConstantVelocityPlanner):
    """Constant velocity plus a lateral offset growing with time, and fake MoE statistics."""

    def plan(self, obs, budget_ms=None):
        result = super().plan(obs, budget_ms)
        result.trajectory.poses[:, 1] += 0.5 * SPEC.times
        result.moe = {"load": [[0.75, 0.25], [0.5, 0.5]], "mean_entropy": 0.6}
        result.mode = "slow"
        return result


def test_constant_velocity_matches_the_log(dataset):
    assert len(dataset) == 15
    out = evaluate_open_loop(ConstantVelocityPlanner(RIG, SPEC), dataset, every=2)
    frames, agg = out["frames"], out["aggregate"]
    assert [f["index"] for f in frames] == list(range(0, 15, 2)) and agg["frames"] == 8
    for f in frames:
        assert f["ade"] < 1e-6 and f["fde"] < 1e-6 and f["l2_3s"] < 1e-6  # the synthetic ego drives at constant speed
        assert 0.0 <= f["PDMS"] <= 1.0 and 0.0 <= f["EPDMS"] <= 1.0
        assert f["NC"] == 1.0 and f["mode"] == "fast" and np.asarray(f["plan"]).shape == (8, 3)
        assert f["episode"] == "a" and f["scenario"] == "highway"
    assert agg["fast_rate"] == 1.0 and agg["slow_rate"] == 0.0 and agg["at_fault_collision_rate"] == 0.0
    assert agg["latency_ms"]["p50"] <= agg["latency_ms"]["p99"] <= agg["latency_ms"]["max"]
    assert agg["PDMS"] == pytest.approx(np.mean([f["PDMS"] for f in frames]))
    assert agg["by_scenario"]["highway"]["frames"] == 8
    assert "moe" not in agg
    json.dumps(out)  # JSON-able as written


def test_errors_are_measured_and_moe_aggregated(dataset):
    seen = []
    out = evaluate_open_loop(Swerve(RIG, SPEC), dataset, every=5, on_frame=seen.append)
    agg = out["aggregate"]
    # lateral error 0.5 m/s · t: ADE is its mean over the grid, FDE the last, L2 at 2 s exactly 1 m
    assert agg["ade"] == pytest.approx(0.5 * SPEC.times.mean())
    assert agg["fde"] == pytest.approx(0.5 * SPEC.times[-1])
    assert agg["l2_2s"] == pytest.approx(1.0)
    assert agg["slow_rate"] == 1.0
    assert agg["moe"]["load_mean"] == [[0.75, 0.25], [0.5, 0.5]]
    assert agg["moe"]["load_cv2"] == [pytest.approx(0.25), 0.0] and agg["moe"]["entropy_mean"] == pytest.approx(0.6)
    assert agg["by_scenario"]["highway"]["moe"] == agg["moe"]
    assert [r.index for r in seen] == [0, 5, 10]
    assert seen[0].scene.previous_plan is None  # EC: the first frame has no predecessor
    np.testing.assert_allclose(seen[1].scene.previous_plan, seen[0].result.trajectory.poses)
    assert seen[1].scene.previous_plan_offset == pytest.approx(0.5)


def test_moe_load_and_entropy_are_reported_per_scenario(dataset):
    rows = evaluate_open_loop(Swerve(RIG, SPEC), dataset, every=5)["frames"]
    rows[0]["scenario"] = "cut_in"
    for r, ent in zip(rows, (0.2, 0.6, 0.7)):
        r["moe_entropy"] = ent
    loads = [np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])]
    agg = aggregate(rows, loads)
    cut_in, highway = agg["by_scenario"]["cut_in"]["moe"], agg["by_scenario"]["highway"]["moe"]
    assert cut_in["load_mean"] == [[1.0, 0.0]] and cut_in["load_cv2"] == [1.0] and cut_in["entropy_mean"] == 0.2
    assert highway["load_mean"] == [[0.375, 0.625]] and highway["entropy_mean"] == pytest.approx(0.65)
    assert agg["moe"]["load_mean"] == [[0.5833, 0.4167]]


def test_running_aggregate_adds_rows_as_they_come(dataset):
    rows = evaluate_open_loop(Swerve(RIG, SPEC), dataset, every=5)["frames"]
    loads = [np.array([[1.0, 0.0]]), None, np.array([[0.5, 0.5]])]
    acc = RunningAggregate()
    acc.add(rows[0], loads[0])
    assert acc.result()["frames"] == 1 and acc.result()["moe"]["load_mean"] == [[1.0, 0.0]]
    for row, load in zip(rows[1:], loads[1:]):
        acc.add(row, load)
    assert acc.result() == aggregate(rows, loads)
    assert acc.result()["moe"]["load_mean"] == [[0.75, 0.25]]  # the frame without a load is not counted
    with pytest.raises(ValueError, match="one MoE load"):
        aggregate(rows, loads[:2])


def test_bad_arguments(dataset):
    planner = ConstantVelocityPlanner(RIG, SPEC)
    with pytest.raises(ValueError, match="every"):
        evaluate_open_loop(planner, dataset, every=0)
    with pytest.raises(ValueError, match="max_frames"):
        evaluate_open_loop(planner, dataset, max_frames=0)
    with pytest.raises(ValueError, match=r"\(8, 3\) plan"):
        evaluate_open_loop(ConstantVelocityPlanner(RIG, TrajectorySpec(6, 0.5)), dataset, max_frames=1)
    with pytest.raises(ValueError, match="no frames"):
        aggregate([])
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        plot_bev("x.png", dataset.scene(0), np.zeros(8))


def test_replay_command_writes_metrics_summary_and_plots(bag, tmp_path):
    from wamdiff_ros.cli import build_parser, main

    model = ConstantVelocityPlanner(RIG, SPEC).save(tmp_path / "cv")
    out = tmp_path / "report"
    args = ["replay", str(bag), "--model", str(model), "--out", str(out), "--every", "3", "--plot-every", "2"]
    args.append("--no-cache")
    assert build_parser().parse_args(args).every == 3
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["family"] == "constant_velocity" and report["samples"] == 15
    assert len(report["frames"]) == 5 and report["aggregate"]["frames"] == 5
    assert report["plots"] == ["metrics.png", "bev/frame_00000.png", "bev/frame_00006.png", "bev/frame_00012.png"]
    for p in report["plots"]:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "| PDMS | EPDMS | NC |" in summary and "highway" in summary and "p99" in summary
    assert main(["replay", str(bag), "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_bench_node_pieces(bag):
    lat, missed = node_bench.frame_latencies({1: 10.0, 2: 10.1, 3: 10.2}, {1: 10.005, 3: 10.25, 9: 11.0})
    np.testing.assert_allclose(lat, [5.0, 50.0])
    assert missed == [2]
    assert node_bench.jitter_ms([0.0, 0.1, 0.2, 0.3]) == pytest.approx(0.0, abs=1e-9)
    assert node_bench.jitter_ms([0.0, 0.1, 0.3]) == pytest.approx(50.0)
    c0 = node_bench.process_cpu_s(os.getpid())
    t_end = time.process_time() + 0.1
    while time.process_time() < t_end:
        pass
    assert node_bench.process_cpu_s(os.getpid()) - c0 >= 0.05
    with RawBagReader(bag) as reader:
        obs, hz = node_bench.bag_frames(reader, RIG, history=4, dt=0.5, max_frames=12)
        with pytest.raises(ValueError, match="rig camera 'rear'"):
            node_bench.image_topics(reader.topics, Rig("r", (CameraSpec("rear", 32, 16, 60.0, (0, 0, 1)),)))
    assert hz == pytest.approx(10.0) and len(obs) == 12
    assert obs[0].images["front"].shape == (32, 48, 3)
    assert obs[11].stamp_ns == obs[0].stamp_ns + 1_100_000_000
    np.testing.assert_allclose(obs[11].ego_history[-1], [-5.0, 0.0, 0.0], atol=1e-9)  # 10 m/s · 0.5 s behind
    np.testing.assert_allclose(obs[0].ego_history, 0.0)
    with pytest.raises(ValueError, match="iterations"):
        node_bench.run(argparse.Namespace(iterations=0, frames=10, warmup_frames=0, rates=[10.0]))


def test_rl_report_compares_a_one_path_family_once(bag, tmp_path):
    """``wamdiff rl``'s before/after table: one row per checkpoint for a family without reasoning modes
    (not one per requested mode with the same numbers)."""
    from wamdiff_ros.training.rl.report import compare_models

    model = str(ConstantVelocityPlanner(RIG, SPEC).save(tmp_path / "cv"))
    out = compare_models({"start": model, "rl": model}, [str(bag)], every=5, modes=("fast", "adaptive"), threads=1)
    assert set(out) == {"start", "rl"} and out["start"]["frames"] == 3
