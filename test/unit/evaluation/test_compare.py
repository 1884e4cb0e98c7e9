"""``wamdiff compare``: one row per model and baseline (open loop, closed loop, latency, size), a Markdown table."""

import json
import math
from pathlib import Path

import pytest

from unit.helpers.training import tiny_cfg, write_tiny_bag
from wamdiff_ros.cli import main
from wamdiff_ros.evaluation.compare import COLUMNS, markdown_table
from wamdiff_ros.evaluation.compare_command import unique_labels
from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_markdown_table_has_a_column_per_figure_and_dashes_for_none():
    rows = [
        {"label": "m", "family": "wamdiff", "open_loop_pdms": 0.8876, "at_fault_collisions": 2, "completed": 0.5},
        {"label": "expert", "family": "expert", "latency_p50_ms": None, "speed_vs_expert": math.nan},
    ]
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 4 and all(line.count("|") == len(COLUMNS) + 1 for line in lines)
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:3] == ["m", "wamdiff", "0.888"] and cells[5] == "50%" and cells[6] == "2"
    assert [c.strip() for c in lines[3].strip("|").split("|")][11:13] == ["-", "-"]


def test_unique_labels():
    assert unique_labels([Path("a/m"), Path("b/m"), Path("c/x")]) == ["m", "m-2", "x"]


def test_compare_command_rows_json_and_markdown(tmp_path, capsys):
    cv = ConstantVelocityPlanner(tiny_cfg().rig_obj).save(tmp_path / "cv")
    bag = write_tiny_bag(tmp_path / "tiny.mcap")
    out, md = tmp_path / "cmp.json", tmp_path / "cmp.md"
    argv = ["compare", "--models", str(cv), "--baselines", "expert", "--data", str(bag), "--every", "10"]
    argv += ["--episodes", "1", "--scenarios", "cut_in", "--max-duration", "0.5", "--workers", "1"]
    assert main([*argv, "--json", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    rows = {r["label"]: r for r in report["rows"]}
    assert list(rows) == ["cv", "expert"]
    assert rows["cv"]["family"] == "constant_velocity" and rows["cv"]["size_mb"] > 0
    assert rows["cv"]["parameters_m"] == 0 and rows["cv"]["latency_p50_ms"] >= 0
    assert 0 < rows["cv"]["open_loop_pdms"] <= 1 and rows["cv"]["timeouts"] == 1
    assert 0 < rows["cv"]["speed_vs_expert"] < 2 and rows["expert"]["latency_p50_ms"] is None
    assert report["open_loop"]["scores"]["expert"]["frames"] == report["open_loop"]["scores"]["cv"]["frames"]
    assert report["closed_loop"]["summaries"]["expert"]["all"]["episodes"] == 1
    table = md.read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| cv | constant_velocity |")
    assert "cv" in capsys.readouterr().out


def test_compare_command_refuses_missing_data(tmp_path, capsys):
    cv = ConstantVelocityPlanner(tiny_cfg().rig_obj).save(tmp_path / "cv")
    argv = ["compare", "--models", str(cv), "--data", str(tmp_path / "nope"), "--json", str(tmp_path / "o.json")]
    assert main(argv) == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "o.json").exists()
