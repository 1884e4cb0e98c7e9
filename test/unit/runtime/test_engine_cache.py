"""TensorRT engine cache without TensorRT: a fake builder stands in for TensorRTBuilder, and the
cache's key, reuse and rebuild decisions are checked one reason at a time."""

import json

import pytest

import wamdiff_ros.runtime.tensorrt_backend as trt_mod
from unit.helpers.runtime import tiny_net
from wamdiff_ros import cli
from wamdiff_ros.planners.wamdiff.graphs import GRAPHS
from wamdiff_ros.runtime.engine_cache import EngineKey, engine_key, engine_paths, ensure_engine
from wamdiff_ros.runtime.export import graph_spec_of

IO = {"prefix_kv": [2, 2, 1, 2, 9, 32], "ids": [1, 16], "logits": [1, 16, 90], "block_kv": [2, 2, 1, 2, 16, 32]}


class FakeBuilder:
    """An EngineBuilder whose engine bytes encode what it was built from (and counts its builds)."""

    def __init__(self, gpu="NVIDIA Orin", version="10.3.0", io=None):
        self.gpu, self.version, self.io = gpu, version, dict(io or IO)
        self.builds = []

    def environment(self):
        return self.gpu, self.version

    def build(self, onnx_path, precision):
        self.builds.append((onnx_path.name, precision))
        return json.dumps({"onnx": onnx_path.read_bytes().hex(), "precision": precision, "io": self.io}).encode()

    def io_shapes(self, engine):
        return json.loads(engine)["io"]


@pytest.fixture
def onnx_file(tmp_path):
    p = tmp_path / "step_traj_fast.onnx"
    p.write_bytes(b"onnx graph v1")
    return p


def test_first_build_then_reuse(onnx_file):
    b = FakeBuilder()
    st = ensure_engine(onnx_file, "fp16", b, IO)
    assert st.action == "built" and "no engine" in st.reason
    assert st.path == onnx_file.parent / "step_traj_fast.fp16.engine" and st.path.is_file()
    doc = json.loads(st.path.with_name(st.path.name + ".json").read_text())
    assert doc["key"] == {
        "onnx_sha256": st.key.onnx_sha256,
        "precision": "fp16",
        "gpu": "NVIDIA Orin",
        "tensorrt": "10.3.0",
    }
    assert doc["io"] == IO and doc["digest"] == st.key.digest()
    again = ensure_engine(onnx_file, "fp16", b, IO)
    assert again.action == "reused" and again.reason is None and len(b.builds) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": "10.5.0"}, "tensorrt '10.3.0' -> '10.5.0'"),
        ({"gpu": "NVIDIA RTX A4000"}, "gpu 'NVIDIA Orin' -> 'NVIDIA RTX A4000'"),
    ],
)
def test_key_change_rebuilds_and_says_why(onnx_file, change, reason):
    ensure_engine(onnx_file, "fp32", FakeBuilder(), IO)
    b = FakeBuilder(**change)
    st = ensure_engine(onnx_file, "fp32", b, IO)
    assert st.action == "rebuilt" and reason in st.reason and len(b.builds) == 1
    assert ensure_engine(onnx_file, "fp32", b, IO).action == "reused"


def test_reexported_onnx_rebuilds(onnx_file):
    b = FakeBuilder()
    ensure_engine(onnx_file, "fp32", b, IO)
    onnx_file.write_bytes(b"onnx graph v2")
    st = ensure_engine(onnx_file, "fp32", b, IO)
    assert st.action == "rebuilt" and "onnx_sha256" in st.reason


def test_precisions_are_cached_side_by_side(onnx_file):
    b = FakeBuilder()
    a, h = ensure_engine(onnx_file, "fp32", b, IO), ensure_engine(onnx_file, "fp16", b, IO)
    assert a.path != h.path and a.key.digest() != h.key.digest()
    assert ensure_engine(onnx_file, "fp32", b, IO).action == "reused"
    assert ensure_engine(onnx_file, "fp16", b, IO).action == "reused"
    assert b.builds == [("step_traj_fast.onnx", "fp32"), ("step_traj_fast.onnx", "fp16")]


def test_io_shape_mismatch_rebuilds(onnx_file):
    b = FakeBuilder()
    ensure_engine(onnx_file, "fp32", b, IO)
    io2 = {**IO, "ids": [1, 8], "logits": [1, 8, 90], "block_kv": [2, 2, 1, 2, 8, 32]}
    b.io = io2
    st = ensure_engine(onnx_file, "fp32", b, io2)
    assert st.action == "rebuilt" and "I/O shapes changed" in st.reason


def test_builder_with_wrong_io_writes_nothing(onnx_file):
    b = FakeBuilder(io={**IO, "ids": [1, 17]})
    with pytest.raises(RuntimeError, match="I/O shapes"):
        ensure_engine(onnx_file, "fp32", b, IO)
    engine, key_file = engine_paths(onnx_file, "fp32")
    assert not engine.exists() and not key_file.exists()


@pytest.mark.parametrize("damage", ["delete_key", "garbage_key", "tamper_engine"])
def test_damaged_cache_rebuilds(onnx_file, damage):
    b = FakeBuilder()
    st = ensure_engine(onnx_file, "fp32", b, IO)
    key_file = st.path.with_name(st.path.name + ".json")
    if damage == "delete_key":  # an interrupted build: engine written, key file not yet
        key_file.unlink()
        expect = "no key file"
    elif damage == "garbage_key":
        key_file.write_text("{not json")
        expect = "unreadable"
    else:
        st.path.write_bytes(b"another engine")
        expect = "engine file differs"
    again = ensure_engine(onnx_file, "fp32", b, IO)
    assert again.action == "rebuilt" and expect in again.reason and len(b.builds) == 2
    assert ensure_engine(onnx_file, "fp32", b, IO).action == "reused"


def test_engine_dir_and_force(onnx_file, tmp_path):
    b = FakeBuilder()
    st = ensure_engine(onnx_file, "fp16", b, IO, engine_dir=tmp_path / "engines")
    assert st.path == tmp_path / "engines" / "step_traj_fast.fp16.engine" and st.path.is_file()
    assert not (onnx_file.parent / "step_traj_fast.fp16.engine").exists()
    forced = ensure_engine(onnx_file, "fp16", b, IO, engine_dir=tmp_path / "engines", force=True)
    assert forced.action == "rebuilt" and forced.reason == "forced"


def test_key_and_inputs_are_validated(onnx_file, tmp_path):
    k1 = engine_key(onnx_file, "fp32", FakeBuilder())
    k2 = engine_key(onnx_file, "fp32", FakeBuilder())
    assert k1 == k2 and k1.digest() == k2.digest() and len(k1.digest()) == 64
    assert EngineKey("a", "fp32", "g", "10").differences(EngineKey("b", "fp32", "g", "10")) == [
        "onnx_sha256 'b' -> 'a'"
    ]
    with pytest.raises(ValueError, match="precision"):
        engine_key(onnx_file, "int8", FakeBuilder())
    with pytest.raises(ValueError, match="does not exist"):
        ensure_engine(tmp_path / "missing.onnx", "fp32", FakeBuilder(), IO)


def test_make_backends_builds_engines_through_the_injected_builder(tmp_path, monkeypatch):
    """The planner path (export -> one engine per graph -> backends) with the fake builder: engines
    are built once per graph and reused by the next load; only the final TensorRT run is faked."""
    from unit.helpers.runtime import ensure_export, graphs_by_name, net_hash
    from wamdiff_ros.runtime.backends import make_backends
    from wamdiff_ros.runtime.export import graph_specs

    class ShapeBuilder(FakeBuilder):
        def build(self, onnx_path, precision):
            self.builds.append((onnx_path.name, precision))
            return json.dumps({"io": self.shapes[onnx_path.stem]}).encode()

    class NoRun:
        def __init__(self, path, graph, precision):
            self.path, self.graph = path, graph

    monkeypatch.setattr(trt_mod, "TensorRTBackend", NoRun)
    net = tiny_net()
    b = ShapeBuilder()
    meta, _ = ensure_export(net, tmp_path / "onnx")
    b.shapes = {n: s.io_shapes() for n, s in graph_specs(meta).items()}
    graphs = list(graphs_by_name(net).values())

    def make():
        return make_backends(
            graphs, "tensorrt", net_hash(net), "wamdiff", "cuda", "fp16", tmp_path / "onnx", tmp_path / "eng", builder=b
        )

    backends, info = make()
    assert set(backends) == set(GRAPHS) and sorted(b.builds) == sorted((f"{n}.onnx", "fp16") for n in GRAPHS)
    assert all(e["action"] == "built" for e in info["engines"].values())
    assert backends["encode"].path == tmp_path / "eng" / "encode.fp16.engine"
    _, info2 = make()
    assert all(e["action"] == "reused" for e in info2["engines"].values()) and len(b.builds) == len(GRAPHS)


class OnnxShapesBuilder(FakeBuilder):
    """Builds 'engines' whose I/O shapes are those of the ONNX file (as TensorRT's would be)."""

    def build(self, onnx_path, precision):
        self.builds.append((onnx_path.name, precision))
        return json.dumps({"io": graph_spec_of(onnx_path, onnx_path.stem).io_shapes()}).encode()


def test_cli_build_only_builds_and_caches_engines_without_running_them(tmp_path, monkeypatch, capsys):
    """`wamdiff export --format tensorrt --build-only` (Autoware's build_only): export, build every
    engine into the cache, stop before loading one; the next call reuses them."""
    builder = OnnxShapesBuilder()
    monkeypatch.setattr(trt_mod, "TensorRTBuilder", lambda workspace_bytes: builder)

    def no_run(*a, **k):
        raise AssertionError("build-only must not load engines")

    monkeypatch.setattr(trt_mod, "TensorRTBackend", no_run)
    folder = tiny_net().save(tmp_path / "ckpt")
    argv = ["export", "--model", str(folder), "--format", "tensorrt", "--precision", "fp16", "--build-only"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "tensorrt 10.3.0 on NVIDIA Orin" in out and out.count(": built (no engine at") == len(GRAPHS)
    assert sorted(p.name for p in (folder / "onnx").glob("*.fp16.engine")) == sorted(f"{n}.fp16.engine" for n in GRAPHS)
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count(": reused") == len(GRAPHS) and len(builder.builds) == len(GRAPHS)
    builder.version = "10.5.0"  # a TensorRT upgrade
    assert cli.main([*argv, "--engine-dir", str(tmp_path / "eng")]) == 0
    assert len(list((tmp_path / "eng").glob("*.engine"))) == len(GRAPHS)
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("tensorrt '10.3.0' -> '10.5.0'") == len(GRAPHS)
