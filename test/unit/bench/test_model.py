"""``wamdiff bench model`` end to end on a tiny checkpoint (2 plans per mode)."""

import json

import torch

from wamdiff_ros.bench.model import synthetic_observations
from wamdiff_ros.cli import main as cli_main
from wamdiff_ros.planners.wamdiff.config import tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet


def test_bench_model_reports_each_mode(tmp_path):
    torch.manual_seed(0)
    path = WamDiffNet(tiny_config()).save(tmp_path / "tiny")
    out = tmp_path / "bench.json"
    n = torch.get_num_threads()
    try:
        rc = cli_main(
            [
                "bench",
                "model",
                "--model",
                str(path),
                "--iters",
                "2",
                "--warmup",
                "1",
                "--threads",
                "1",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [r["mode"] for r in doc["rows"]] == ["fast", "slow", "adaptive"]
    fast, slow = doc["rows"][0], doc["rows"][1]
    assert fast["slow"] == 0.0 and slow["slow"] == 1.0
    assert 0 < fast["p50_ms"] <= fast["p99_ms"] <= fast["max_ms"]
    assert 0 < fast["cpu_p50_ms"] < slow["cpu_p50_ms"]  # slow plans run more graph calls
    assert "reason_p50" in slow and "fast_p50" in fast
    assert doc["meta"]["model"] == str(path) and doc["meta"]["untrained"] is False
    assert doc["targets"]["fast p50_ms"] == "<= 30"


def test_synthetic_observations_fit_the_rig():
    cfg = tiny_config()
    obs = synthetic_observations(cfg.rig_obj, count=5)
    assert len(obs) == 5 and len({o.command for o in obs}) == 5
    assert all(o.images["front"].shape == (32, 64, 3) for o in obs)
