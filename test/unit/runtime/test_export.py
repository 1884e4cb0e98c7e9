"""ONNX export with metadata: checker and strict shape inference pass, static named I/O recorded in
export.json with the model hash, stale or damaged exports are redone, and `wamdiff export` works
end to end on a checkpoint (and refuses what it cannot do, saying why)."""

import json

import onnx
import pytest
import torch

from unit.helpers.runtime import ensure_export, graphs_by_name, net_hash, tiny_net
from wamdiff_ros import cli
from wamdiff_ros.planners.wamdiff.graphs import GRAPHS
from wamdiff_ros.runtime.export import (
    EXPORT_FILE,
    ExportError,
    default_export_dir,
    graph_specs,
    read_export,
    sha256_file,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    net = tiny_net()
    out = tmp_path_factory.mktemp("onnx")
    meta, reason = ensure_export(net, out, source="tiny")
    return net, out, meta, reason


def test_metadata_records_opset_shapes_hash_and_files(export):
    net, out, meta, reason = export
    assert "export.json is missing" in reason
    doc = json.loads((out / EXPORT_FILE).read_text())
    assert doc == meta
    assert meta["opset"] == 17 and meta["batch"] == 1 and meta["model_hash"] == net_hash(net)
    assert meta["family"] == "wamdiff" and meta["model"] == "tiny" and meta["created"].endswith("+00:00")
    assert set(meta["graphs"]) == set(GRAPHS)
    lay, tc = net.layout, net.cfg.transformer
    kv = [tc.layers, 2, 1, tc.heads]
    hd = tc.d_model // tc.heads
    enc = {t["name"]: t for t in meta["graphs"]["encode"]["inputs"] + meta["graphs"]["encode"]["outputs"]}
    assert enc["images"]["shape"] == [1, 2, 32, 64, 3] and enc["images"]["dtype"] == "uint8"
    assert enc["prompt"]["dtype"] == "int64" and enc["prefix_kv"]["shape"] == [*kv, lay.prefix_len, hd]
    slow = graph_specs(meta)["step_traj_slow"]
    assert slow.input_names == ["prefix_kv", "ids"]
    assert slow.output_names == ["logits", "block_kv", "router_probs", "router_gates"]  # tiny_net has a MoE
    assert slow.inputs[0].shape == (*kv, lay.prefix_len + lay.text_len, hd)
    assert slow.outputs[0].shape == (1, lay.traj_len, len(net.space))
    experts = net.cfg.moe.num_experts
    assert slow.outputs[2].shape == slow.outputs[3].shape == (tc.layers, 1, lay.traj_len, experts)
    assert enc["router_gates"]["shape"] == [tc.layers, 1, lay.prefix_len, experts]
    for name, g in meta["graphs"].items():
        assert g["sha256"] == sha256_file(out / g["file"])
        model = onnx.load(str(out / g["file"]))
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == [t["name"] for t in g["inputs"]], name


def test_specs_without_export_match_the_exported_ones(export):
    net, _, meta, _ = export
    assert {n: g.spec() for n, g in graphs_by_name(net).items()} == {
        n: s.__class__(s.name, s.inputs, s.outputs) for n, s in graph_specs(meta).items()
    }


def test_current_export_is_reused_and_stale_one_redone(export, tmp_path):
    net, out, meta, _ = export
    again, reason = ensure_export(net, out)
    assert reason is None and again == meta
    other = tiny_net(seed=1)
    work = tmp_path / "onnx"
    ensure_export(net, work)
    meta2, reason2 = ensure_export(other, work)
    assert "model hash" in reason2 and meta2["model_hash"] == net_hash(other) != meta["model_hash"]


def test_export_of_graphs_with_other_io_is_redone(tmp_path):
    """Same model hash, but the code's graphs now have other inputs/outputs (an export by an older
    version): the export is redone, not fed the wrong tensors."""
    net = tiny_net()
    ensure_export(net, tmp_path)
    doc = json.loads((tmp_path / EXPORT_FILE).read_text())
    doc["graphs"]["step_text"]["inputs"][0]["name"] = "cache"
    (tmp_path / EXPORT_FILE).write_text(json.dumps(doc))
    again, reason = ensure_export(net, tmp_path)
    assert "inputs/outputs of graphs ['step_text']" in reason
    assert graph_specs(again)["step_text"].input_names == ["prefix_kv", "ids"]


def test_damaged_export_is_refused_then_redone(tmp_path):
    net = tiny_net()
    meta, _ = ensure_export(net, tmp_path)
    f = tmp_path / meta["graphs"]["step_text"]["file"]
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ExportError, match="does not match the SHA-256"):
        read_export(tmp_path)
    _, reason = ensure_export(net, tmp_path)
    assert "does not match" in reason
    read_export(tmp_path)
    (tmp_path / EXPORT_FILE).write_text('{"format": "other"}')
    with pytest.raises(ExportError, match="not a wamdiff_ros.onnx v2 record"):
        read_export(tmp_path)


def test_model_hash_tracks_weights():
    a, b = tiny_net(), tiny_net()
    assert net_hash(a) == net_hash(b)
    with torch.no_grad():
        b.complexity[0].bias[0] += 1e-3
    assert net_hash(a) != net_hash(b)


def test_default_export_dir_falls_back_to_the_cache(tmp_path, monkeypatch):
    import wamdiff_ros.runtime.export as export_mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert default_export_dir(ckpt, "ab" * 32) == ckpt / "onnx"
    monkeypatch.setattr(export_mod.os, "access", lambda path, mode: False)  # an installed, read-only share/
    assert default_export_dir(ckpt, "ab" * 32) == tmp_path / "cache" / "wamdiff_ros" / "onnx" / ("ab" * 8)
    assert default_export_dir(None, "cd" * 32).name == "cd" * 8


def test_cli_exports_a_checkpoint_and_checks_parity(tmp_path, capsys):
    folder = tiny_net().save(tmp_path / "ckpt")
    assert cli.main(["export", "--model", str(folder), "--format", "onnx"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime: OK" in text and "step_traj_slow.onnx" in text
    assert read_export(folder / "onnx")["model"] == str(folder)
    assert cli.main(["export", "--model", str(folder), "--build-only"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_cli_refusals_say_why(tmp_path, capsys):
    folder = tiny_net().save(tmp_path / "ckpt")
    assert cli.main(["export", "--model", str(folder), "--precision", "fp16"]) == 1
    assert "fp16 applies to --format tensorrt" in capsys.readouterr().out
    assert cli.main(["export"]) == 1
    assert "give --model DIR" in capsys.readouterr().out
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert cli.main(["export", "--model", str(folder), "--format", "tensorrt", "--build-only"]) == 1
        assert "Python package 'tensorrt' not importable" in capsys.readouterr().out
        assert not (folder / "onnx").exists()  # fails before exporting anything
