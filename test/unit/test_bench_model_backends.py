"""``wamdiff bench model --backend torch,onnxruntime`` on a tiny checkpoint: one row per backend and
mode, ONNX Runtime rows carry their speed ratio to torch, metadata says what ran where."""

import json

import torch
from _runtime_helpers import tiny_net

from wamdiff_ros.cli import main as cli_main


def test_bench_model_per_backend(tmp_path):
    path = tiny_net().save(tmp_path / "tiny")
    out = tmp_path / "bench.json"
    n = torch.get_num_threads()
    try:
        args = "--backend torch,onnxruntime --modes fast,slow --iters 3 --warmup 1 --threads 1 --no-moe-stats"
        rc = cli_main(["bench", "model", "--model", str(path), *args.split(), "--json", str(out)])
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert [(r["backend"], r["mode"]) for r in rows] == [
        ("torch", "fast"),
        ("onnxruntime", "fast"),
        ("torch", "slow"),
        ("onnxruntime", "slow"),
    ]
    for t, o in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert "x_torch" not in t and abs(o["x_torch"] - t["p50_ms"] / o["p50_ms"]) < 1e-9
        assert o["slow"] == t["slow"]
    ort = doc["meta"]["backends"]["onnxruntime"]
    assert ort["backend"] == "onnxruntime" and ort["export_dir"] == str(path / "onnx")
    assert (path / "onnx" / "export.json").is_file() and doc["meta"]["moe_stats"] is False


def test_bench_model_names_an_unavailable_backend(tmp_path, capsys):
    path = tiny_net().save(tmp_path / "tiny")
    n = torch.get_num_threads()
    try:
        rc = cli_main(["bench", "model", "--model", str(path), "--backend", "torch,tensorrt", "--iters", "1"])
    finally:
        torch.set_num_threads(n)
    assert rc == 1 and "backend tensorrt runs on CUDA: set device cuda" in capsys.readouterr().out
