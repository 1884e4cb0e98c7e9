"""``wamdiff bench render`` end to end with tiny settings: one row per camera and the total, in JSON."""

from __future__ import annotations

import json

from wamdiff_ros.cli import main


def test_bench_render_writes_rows(tmp_path):
    out = tmp_path / "render.json"
    assert main(["bench", "render", "--frames", "3", "--agents", "2", "--json", str(out)]) in (0, 1)
    rows = json.loads(out.read_text())["rows"]
    assert [r["camera"] for r in rows] == ["front", "front_left", "front_right", "all"]
    assert all(r["p50_ms"] > 0 for r in rows)
