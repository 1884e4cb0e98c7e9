"""``wamdiff bench scorer`` runs end to end with tiny settings and writes its JSON."""

from __future__ import annotations

import json

from wamdiff_ros.cli import main


def test_bench_scorer_writes_json(tmp_path):
    out = tmp_path / "scorer.json"
    assert (
        main(
            [
                "bench",
                "scorer",
                "--sizes",
                "1",
                "4",
                "--iters",
                "1",
                "--warmup",
                "0",
                "--agents",
                "5",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["benchmark"] == "scorer"
    sizes = [row["candidates"] for row in data["rows"]]
    assert sizes == ["cold (1)", 1, 4]
    for row in data["rows"]:
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] * 0.999
    assert data["meta"]["agents"] == 5
    assert 0.0 <= data["meta"]["candidate_means"]["PDMS"] <= 1.0
    assert "256 candidates p50 <= 50 ms" in data["targets"]
