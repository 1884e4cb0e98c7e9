"""``wamdiff export``: ONNX graphs of a model with their metadata, and TensorRT engines built from them.

An export folder holds the graphs of :mod:`wamdiff_ros.models.export` (``encode.onnx``,
``step_traj_fast.onnx``, ``step_text.onnx``, ``step_traj_slow.onnx``; static shapes, named I/O) and
``export.json``: format version, opset, batch, the model hash (SHA-256 of the config and every weight,
so a re-trained model never runs on stale graphs), each file's SHA-256 and I/O shapes from ONNX shape
inference, creation time and tool versions. TensorRT engines are cached beside the graphs (or in
``--engine-dir``) by :mod:`wamdiff_ros.runtime.engine_cache`.

The default export folder of a checkpoint is ``<checkpoint>/onnx``; where that is not writable (an
installed share/ folder) it is ``$XDG_CACHE_HOME/wamdiff_ros/onnx/<model hash>`` (``~/.cache`` when
unset).

Without ``--build-only`` the command also checks what it produced: ONNX Runtime against torch on
random inputs (max abs difference per output, fails above 1e-4), and for ``--format tensorrt`` each
engine against torch (1e-3 in fp32, 5e-2 in fp16). ``--build-only`` stops after writing the files
(Autoware's ``build_only``).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
from pathlib import Path

from wamdiff_ros.atomic import atomic_write_json
from wamdiff_ros.runtime.base import BackendUnavailable, GraphSpec, TensorSpec

EXPORT_FILE = "export.json"
FORMAT = "wamdiff_ros.onnx"
FORMAT_VERSION = 2
"""2: graphs of MoE networks output their routers' probabilities and gates (older exports are re-made)."""
DEFAULT_OPSET = 17
PARITY_TOL = {"onnxruntime": 1e-4, "tensorrt fp32": 1e-3, "tensorrt fp16": 5e-2}
"""Max abs difference against torch (fp32, CPU) accepted by the export check, per backend (TensorRT
picks its own kernels and accumulation order; fp16 keeps ~3 significant digits)."""


class ExportError(ValueError):
    """An export folder is missing, incomplete, stale or does not fit the model."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_hash(net) -> str:
    """SHA-256 of a network's config (with its text tokens) and every state-dict tensor, in name order."""
    h = hashlib.sha256()
    cfg = {"config": net.cfg.to_dict(), "text_tokens": list(net.space.text.tokens)}
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wamdiff_ros"


def default_export_dir(model_dir: str | os.PathLike | None, mhash: str) -> Path:
    """``<model_dir>/onnx`` when it can be written, else the user cache folder for this model hash."""
    if model_dir is not None:
        folder = Path(model_dir) / "onnx"
        probe = folder if folder.exists() else Path(model_dir)
        if os.access(probe, os.W_OK):
            return folder
    return cache_root() / "onnx" / mhash[:16]


def _tensor_specs(values) -> tuple[TensorSpec, ...]:
    import onnx
    from onnx import helper

    out = []
    for v in values:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        try:
            out.append(TensorSpec(v.name, tuple(dims), dtype))
        except ValueError as e:
            raise ExportError(f"ONNX value {v.name!r}: {e} ({onnx.TensorProto.DataType.Name(tt.elem_type)})") from e
    return tuple(out)


def graph_spec_of(path: str | os.PathLike, name: str) -> GraphSpec:
    """I/O of an ONNX file after strict shape inference; ExportError unless every shape is static."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    return GraphSpec(name, _tensor_specs(model.graph.input), _tensor_specs(model.graph.output), Path(path).name)


def graph_specs_of_net(net, batch: int = 1) -> dict[str, GraphSpec]:
    """Specs of every graph of ``net`` without exporting (inputs from the example shapes, outputs from
    one forward pass), for backends that run the torch modules directly."""
    import torch

    from wamdiff_ros.models.export import GRAPHS, example_inputs, graph_module

    specs = {}
    for name in GRAPHS:
        module, ins, outs = graph_module(net, name)
        x = example_inputs(net, name, batch)
        with torch.inference_mode():
            y = module(*(t.to(next(net.parameters()).device) for t in x))
        specs[name] = GraphSpec(
            name,
            tuple(TensorSpec(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in zip(ins, x)),
            tuple(TensorSpec(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in zip(outs, y)),
        )
    return specs


def export_model(net, out_dir: str | os.PathLike, source: str = "", opset: int = DEFAULT_OPSET, batch: int = 1) -> dict:
    """Export every graph of ``net`` into ``out_dir`` and write ``export.json`` (last); returns it."""
    import onnx
    import torch

    from wamdiff_ros.models.export import GRAPHS, export_onnx

    out_dir = Path(out_dir)
    mhash = model_hash(net)
    paths = export_onnx(net, out_dir, GRAPHS, opset=opset, batch=batch)
    graphs = {}
    for name, path in paths.items():
        spec = graph_spec_of(path, name)
        graphs[name] = {**spec.to_dict(), "sha256": sha256_file(path)}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": net.cfg.family,
        "model": source,
        "model_hash": mhash,
        "opset": opset,
        "batch": batch,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "graphs": graphs,
    }
    atomic_write_json(out_dir / EXPORT_FILE, meta)
    return meta


def read_export(out_dir: str | os.PathLike, verify_files: bool = True) -> dict:
    """The ``export.json`` of ``out_dir``, checked: format, every graph file present (and, with
    ``verify_files``, matching its recorded SHA-256). ExportError says what is wrong."""
    out_dir = Path(out_dir)
    path = out_dir / EXPORT_FILE
    if not path.is_file():
        raise ExportError(f"export folder {out_dir}: {EXPORT_FILE} is missing (run `wamdiff export`)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"export folder {out_dir}: {EXPORT_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"export folder {out_dir}: {EXPORT_FILE} is not a {FORMAT} v{FORMAT_VERSION} record "
            f"(format {meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    for name, g in meta.get("graphs", {}).items():
        f = out_dir / g["file"]
        if not f.is_file():
            raise ExportError(f"export folder {out_dir}: graph {name!r} file {g['file']} is missing")
        if verify_files and sha256_file(f) != g["sha256"]:
            raise ExportError(f"export folder {out_dir}: {g['file']} does not match the SHA-256 in {EXPORT_FILE}")
    return meta


def graph_specs(meta: dict) -> dict[str, GraphSpec]:
    return {name: GraphSpec.from_dict(name, g) for name, g in meta["graphs"].items()}


def ensure_export(
    net, out_dir: str | os.PathLike, source: str = "", opset: int = DEFAULT_OPSET, force: bool = False
) -> tuple[dict, str | None]:
    """The export of ``net`` in ``out_dir``, re-exported when missing, damaged, stale (another model
    hash or opset) or ``force``. Returns ``(metadata, reason it was (re-)exported or None)``."""
    from wamdiff_ros.models.export import GRAPHS

    reason = "forced" if force else None
    if reason is None:
        try:
            meta = read_export(out_dir)
        except ExportError as e:
            reason = str(e)
        else:
            if meta["model_hash"] != model_hash(net):
                reason = f"model hash {meta['model_hash'][:12]}… differs from the model's (re-trained?)"
            elif meta["opset"] != opset:
                reason = f"opset {meta['opset']} != {opset}"
            elif set(meta["graphs"]) != set(GRAPHS):
                reason = f"graphs {sorted(meta['graphs'])} != {sorted(GRAPHS)}"
            else:
                return meta, None
    return export_model(net, out_dir, source, opset), reason


def random_inputs(net, name: str, seed: int = 0) -> dict:
    """Random named inputs of graph ``name`` at its static shapes (valid ids, raw pixels, N(0,1) floats)."""
    import torch

    from wamdiff_ros.models.export import example_inputs, graph_module

    g = torch.Generator().manual_seed(seed)
    x = example_inputs(net, name)
    _, names, _ = graph_module(net, name)
    if name == "encode":
        vals = (
            torch.randint(0, 256, x[0].shape, generator=g, dtype=torch.uint8),
            torch.randn(x[1].shape, generator=g),
            torch.randint(0, len(net.space.text), x[2].shape, generator=g),
        )
    else:
        vals = (torch.randn(x[0].shape, generator=g), torch.randint(0, len(net.space), x[1].shape, generator=g))
    return dict(zip(names, vals))


def compare_backends(reference, candidates: dict, inputs_of) -> dict[str, dict[str, float]]:
    """``{graph: {output: max abs difference}}`` of each candidate backend against ``reference``
    (both ``{graph: StepBackend}``) on ``inputs_of(graph)``."""
    out = {}
    for name, backend in candidates.items():
        x = inputs_of(name)
        ref = {k: v.detach().float().cpu().clone() for k, v in reference[name].run(x).items()}
        got = backend.run(x)
        out[name] = {k: float((got[k].detach().float().cpu() - ref[k]).abs().max()) for k in ref}
    return out


def load_net(model: str | None, config: str | None):
    """``(WamDiffNet, source label, checkpoint folder or None)`` of ``--model`` or a fresh ``--config``."""
    import torch

    from wamdiff_ros.models.config import ModelConfig
    from wamdiff_ros.models.net import WamDiffNet
    from wamdiff_ros.planners.base import checkpoint_family

    if model:
        family = checkpoint_family(model)
        if family != "wamdiff":
            raise ExportError(f"--model {model}: family {family!r} has no exportable network (only 'wamdiff')")
        return WamDiffNet.load(model), str(model), Path(model)
    if not config:
        raise ExportError("wamdiff export: give --model DIR (a checkpoint) or --config YAML (an untrained model)")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = WamDiffNet(ModelConfig.from_yaml(config)).eval()
    return net, f"untrained:{Path(config).name}", None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="checkpoint folder")
    p.add_argument("--config", metavar="YAML", help="export an untrained model of this config instead (needs --out)")
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="TensorRT engine precision")
    p.add_argument("--build-only", action="store_true", help="write the files and stop (no verification run)")
    p.add_argument("--out", metavar="DIR", help="export folder (default: <model>/onnx, else the user cache)")
    p.add_argument("--engine-dir", metavar="DIR", help="TensorRT engine folder (default: beside the ONNX files)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace memory-pool limit")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--force", action="store_true", help="re-export and rebuild even when the cache is current")


def main(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(2)
    try:
        return _run(args)
    except (BackendUnavailable, ValueError) as e:
        print(f"wamdiff export: {e}")
        return 1


def _run(args: argparse.Namespace) -> int:
    from wamdiff_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from wamdiff_ros.runtime.torch_backend import TorchBackend

    if args.format == "onnx" and args.precision != "fp32":
        raise ValueError(
            "--precision fp16 applies to --format tensorrt (a TensorRT builder flag); ONNX graphs are exported in fp32"
        )
    if args.config and not args.model and not args.out:
        raise ValueError("--config exports an untrained model: give --out DIR for its files")
    builder = None
    if args.format == "tensorrt":
        from wamdiff_ros.runtime.tensorrt_backend import TensorRTBuilder

        builder = TensorRTBuilder(workspace_bytes=args.workspace_mb << 20)
        gpu, version = builder.environment()
        print(f"tensorrt {version} on {gpu}")
    net, source, folder = load_net(args.model, args.config)
    out = Path(args.out) if args.out else default_export_dir(folder, model_hash(net))
    meta, reason = ensure_export(net, out, source, args.opset, args.force)
    print(f"onnx: {out} ({'exported: ' + reason if reason else 'up to date'})")
    for g in meta["graphs"].values():
        shapes = ", ".join(f"{t['name']}{tuple(t['shape'])}" for t in g["inputs"] + g["outputs"])
        print(f"  {g['file']}: {shapes}")
    specs = graph_specs(meta)
    torch_ref = {n: TorchBackend(net, s) for n, s in specs.items()}
    if args.format == "onnx":
        if args.build_only:
            return 0
        ort = {n: OnnxRuntimeBackend(out / s.file, s) for n, s in specs.items()}
        diffs = compare_backends(torch_ref, ort, lambda n: random_inputs(net, n))
        return _report_parity("onnxruntime", diffs)
    from wamdiff_ros.runtime.engine_cache import ensure_engines
    from wamdiff_ros.runtime.tensorrt_backend import TensorRTBackend

    statuses = ensure_engines(out, specs, args.precision, builder, args.engine_dir, args.force)
    for st in statuses.values():
        print(f"  engine {st.path}: {st.action}{' (' + st.reason + ')' if st.reason else ''}")
    if args.build_only:
        return 0
    trt = {n: TensorRTBackend(statuses[n].path, specs[n], args.precision) for n in specs}
    diffs = compare_backends(torch_ref, trt, lambda n: random_inputs(net, n))
    return _report_parity(f"tensorrt {args.precision}", diffs)


def _report_parity(label: str, diffs: dict) -> int:
    tol = PARITY_TOL[label]
    worst = max(v for d in diffs.values() for v in d.values())
    for name, d in diffs.items():
        print(f"  {label} vs torch, {name}: " + ", ".join(f"{k} max|Δ| {v:.2e}" for k, v in d.items()))
    ok = worst <= tol
    print(f"{label}: {'OK' if ok else 'FAILED'} (worst max|Δ| {worst:.2e}, tolerance {tol:.0e})")
    return 0 if ok else 1
