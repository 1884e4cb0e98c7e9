"""ONNX export of a planner's graphs with their metadata, the checks of an export folder, and backend
parity (the library behind ``wamdiff export``; it knows graphs, never a family).

An export folder holds one ``<name>.onnx`` per :class:`~wamdiff_ros.runtime.base.GraphModule` (static
shapes, named I/O) and ``export.json``: format version, opset, batch, the family, the model hash
(SHA-256 of the checkpoint config and every weight, so a re-trained model never runs on stale graphs),
each file's SHA-256 and I/O shapes from ONNX shape inference, creation time and tool versions.
TensorRT engines are cached beside the graphs (or in an engine folder) by
:mod:`wamdiff_ros.runtime.engine_cache`.

The default export folder of a checkpoint is ``<checkpoint>/onnx``; where that is not writable (an
installed share/ folder) it is ``$XDG_CACHE_HOME/wamdiff_ros/onnx/<model hash>`` (``~/.cache`` when
unset).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from wamdiff_ros.atomic import atomic_path, atomic_write_json
from wamdiff_ros.runtime.base import GraphModule, GraphSpec, TensorSpec

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


def model_hash(config: dict, state: Mapping | None) -> str:
    """SHA-256 of a checkpoint ``config`` mapping and every tensor of ``state`` (a state dict), in name order."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, t in sorted((state or {}).items()):
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


def export_onnx(
    graphs: Sequence[GraphModule], out_dir: str | os.PathLike, opset: int = DEFAULT_OPSET
) -> dict[str, Path]:
    """Export every graph to ``out_dir/<name>.onnx`` (atomically) and check each with onnx.checker.
    The modules' train/eval mode is left as it was."""
    import onnx
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for g in graphs:
        was_training = g.module.training
        g.module.eval()
        path = out_dir / f"{g.name}.onnx"
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (no onnxscript here)
            torch.onnx.export(
                g.module,
                tuple(g.example_inputs),
                str(tmp),
                input_names=list(g.input_names),
                output_names=list(g.output_names),
                opset_version=opset,
                dynamo=False,
            )
            onnx.checker.check_model(str(tmp), full_check=True)
        g.module.train(was_training)
        paths[g.name] = path
    return paths


def export_model(
    graphs: Sequence[GraphModule],
    out_dir: str | os.PathLike,
    mhash: str,
    family: str = "",
    source: str = "",
    opset: int = DEFAULT_OPSET,
    batch: int = 1,
) -> dict:
    """Export ``graphs`` (made for ``batch``) into ``out_dir`` and write ``export.json`` (last); returns it."""
    import onnx
    import torch

    out_dir = Path(out_dir)
    paths = export_onnx(graphs, out_dir, opset=opset)
    files = {}
    for name, path in paths.items():
        spec = graph_spec_of(path, name)
        files[name] = {**spec.to_dict(), "sha256": sha256_file(path)}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "model": source,
        "model_hash": mhash,
        "opset": opset,
        "batch": batch,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "graphs": files,
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
    graphs: Sequence[GraphModule],
    out_dir: str | os.PathLike,
    mhash: str,
    family: str = "",
    source: str = "",
    opset: int = DEFAULT_OPSET,
    force: bool = False,
) -> tuple[dict, str | None]:
    """The export of ``graphs`` (of the model with hash ``mhash``) in ``out_dir``, re-exported when
    missing, damaged, stale (another model hash, opset, set of graphs or graph input/output names: an
    export by code whose graphs had other I/O) or ``force``. Returns ``(metadata, reason it was
    (re-)exported or None)``."""
    names = sorted(g.name for g in graphs)
    reason = "forced" if force else None
    if reason is None:
        try:
            meta = read_export(out_dir)
        except ExportError as e:
            reason = str(e)
        else:
            if meta["model_hash"] != mhash:
                reason = f"model hash {meta['model_hash'][:12]}… differs from the model's (re-trained?)"
            elif meta["opset"] != opset:
                reason = f"opset {meta['opset']} != {opset}"
            elif sorted(meta["graphs"]) != names:
                reason = f"graphs {sorted(meta['graphs'])} != {names}"
            else:
                specs = graph_specs(meta)
                changed = [
                    g.name
                    for g in graphs
                    if (specs[g.name].input_names, specs[g.name].output_names)
                    != (list(g.input_names), list(g.output_names))
                ]
                if not changed:
                    return meta, None
                reason = f"inputs/outputs of graphs {changed} differ from this version's"
    return export_model(graphs, out_dir, mhash, family, source, opset), reason


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


def report_parity(label: str, diffs: dict) -> int:
    """Print ``diffs`` (of :func:`compare_backends`) against ``label``'s tolerance; 0 when within it, else 1."""
    tol = PARITY_TOL[label]
    worst = max(v for d in diffs.values() for v in d.values())
    for name, d in diffs.items():
        print(f"  {label} vs torch, {name}: " + ", ".join(f"{k} max|Δ| {v:.2e}" for k, v in d.items()))
    ok = worst <= tol
    print(f"{label}: {'OK' if ok else 'FAILED'} (worst max|Δ| {worst:.2e}, tolerance {tol:.0e})")
    return 0 if ok else 1
