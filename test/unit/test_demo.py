"""`wamdiff demo` without ROS: model checks, graph arguments, the summary and its table, argument errors."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from wamdiff_ros import demo
from wamdiff_ros.graphs import load_graph, node_commands
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
from wamdiff_ros.rig import load_rig


def _episode(**kw):
    base = {
        "episode": "merge-20000",
        "scenario": "merge",
        "seed": 20000,
        "reason": "timeout",
        "collision": False,
        "at_fault_collision": False,
        "route_completion": 0.5,
        "mean_pdms": 0.8,
        "driving_score": 50.0,
        "ticks": 101,
        "trajectory_timeouts": 0,
    }
    return {**base, **kw}


def test_missing_model_names_it_and_how_to_train(tmp_path):
    with pytest.raises(ValueError, match=r"'no_such_model' not found.*wamdiff train"):
        demo.check_model("no_such_model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no config\.json.*wamdiff train"):
        demo.check_model(tmp_path / "empty")
    folder = ConstantVelocityPlanner(load_rig("rigs/default.yaml")).save(tmp_path / "cv")
    assert demo.check_model(folder) == folder.resolve()
    doc = json.loads((folder / "config.json").read_text())
    doc.update(family="wamdiff", weights_sha256="0" * 64)  # a checkpoint that records weights
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"no model\.safetensors"):
        demo.check_model(tmp_path / "net")


def test_graph_arguments_become_typed_bridge_parameters(tmp_path):
    args = demo.graph_arguments(tmp_path / "m", ["merge", "cut_in"], 4, 5, tmp_path / "out")
    commands = dict((node.name, argv) for node, argv in node_commands(load_graph(demo.GRAPH), args))
    bridge = commands["sim_bridge_node"]
    for expected in (
        "scenarios:=[merge, cut_in]",
        "episodes:=4",
        "max_duration_s:=5.0",  # a float parameter: "5" would be refused as an integer
        "publish_markers:=true",
        "split:=test",
        f"metrics_path:={tmp_path / 'out' / 'episodes.json'}",
    ):
        assert expected in bridge
    assert f"model_path:={tmp_path / 'm'}" in commands["planner_node"]
    fresh = demo.graph_arguments(tmp_path / "m", ["merge"], 1, 5, tmp_path / "out", "closedloop")
    assert (
        "split:=closedloop"
        in dict((n.name, a) for n, a in node_commands(load_graph(demo.GRAPH), fresh))["sim_bridge_node"]
    )


def test_summary_counts_collisions_rates_and_latency():
    episodes = [
        _episode(),
        _episode(
            collision=True,
            at_fault_collision=True,
            route_completion=0.2,
            mean_pdms=0.0,
            driving_score=12.0,
            trajectory_timeouts=2,
        ),
        _episode(collision=True, route_completion=0.9, mean_pdms=math.nan, driving_score=54.0),
    ]
    diagnostics = {"plans": "40", "fast": "30", "slow": "10", "fallbacks_hold": "6", "fallbacks_stop": "4"}
    s = demo.summarize(episodes, [float(k) for k in range(1, 101)], diagnostics)
    assert (s["episodes"], s["collisions"], s["at_fault_collisions"]) == (3, 2, 1)
    assert s["route_completion"] == pytest.approx((0.5 + 0.2 + 0.9) / 3)
    assert s["mean_pdms"] == pytest.approx(0.4)  # nan episodes (never scored) are left out
    assert s["driving_score"] == pytest.approx((50.0 + 12.0 + 54.0) / 3)
    assert s["latency_ms_p50"] == pytest.approx(50.5) and s["latency_ms_p99"] == pytest.approx(99.01)
    assert (s["fast_rate"], s["slow_rate"], s["fallback_rate"]) == (0.75, 0.25, 0.2)
    assert s["trajectory_timeouts"] == 2
    empty = demo.summarize([], [], {})
    assert empty["episodes"] == 0 and math.isnan(empty["latency_ms_p50"]) and math.isnan(empty["fast_rate"])


def test_table_rows_name_every_required_column():
    episodes = [_episode(), _episode(episode="cut_in-20000", collision=True)]
    rows, total = demo.table_rows(episodes, demo.summarize(episodes, [1.0, 3.0], {"plans": "2", "fast": "2"}))
    assert [r["at-fault"] for r in rows] == ["no", "not at fault"]
    values = {r["metric"]: r["value"] for r in total}
    assert values["episodes"] == 2 and values["at-fault collisions"] == "0 (all collisions 1)"
    assert values["planner latency p99 (ms)"] == pytest.approx(2.98)
    assert values["fast / slow rate"] == "1.000 / 0.000 of 2 plans"
    assert {"route completion", "mean score (closed-loop PDMS)", "planner latency p50 (ms)"} <= set(values)
    assert values["driving score (CARLA leaderboard, %)"] == pytest.approx(50.0)


def _args(**kw):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"episodes": 0}, "--episodes"),
        ({"max_duration": 0}, "--max-duration"),
        ({"episodes": 2, "gif_episode": 2}, "--gif-episode"),
        ({"model": "no_such_model"}, "wamdiff train"),
    ],
)
def test_bad_arguments_exit_2_before_starting_anything(kw, message, capsys, tmp_path):
    assert demo.main(_args(out=tmp_path / "out", **kw)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_scenario_exits_2(capsys, tmp_path):
    args = _args(out=tmp_path / "out")
    args.scenarios = ["merge", "no_such_scenario"]
    assert demo.main(args) == 2
    assert "no_such_scenario" in capsys.readouterr().err
