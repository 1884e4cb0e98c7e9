"""Backends for a planner's graphs: one :class:`~wamdiff_ros.runtime.base.StepBackend` per
:class:`~wamdiff_ros.runtime.base.GraphModule`, on torch, ONNX Runtime or TensorRT, exporting the ONNX
graphs and building the TensorRT engines they need when stale."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

from wamdiff_ros.runtime.base import BACKENDS, DEVICES, PRECISIONS, BackendUnavailable, GraphModule, StepBackend


def check_combination(backend: str, device: str, precision: str) -> None:
    """ValueError / BackendUnavailable for a combination that cannot run (before any loading)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if backend == "tensorrt" and device != "cuda":
        raise ValueError("backend tensorrt runs on CUDA: set device cuda")
    if backend == "onnxruntime" and precision != "fp32":
        raise ValueError("backend onnxruntime runs the fp32 ONNX graphs: use precision fp32 (fp16: tensorrt)")
    if backend == "torch" and precision == "fp16" and device != "cuda":
        raise ValueError("backend torch runs fp16 under CUDA autocast only: set device cuda or precision fp32")


def make_backends(
    graphs: Sequence[GraphModule],
    backend: str,
    mhash: str = "",
    family: str = "",
    device: str = "cpu",
    precision: str = "fp32",
    export_dir: str | os.PathLike | None = None,
    engine_dir: str | os.PathLike | None = None,
    source: str = "",
    threads: int = 2,
    cuda_graph: bool | None = None,
    builder=None,
    io_binding: bool = True,
    spinning: bool = True,
) -> tuple[dict[str, StepBackend], dict]:
    """``({graph name: StepBackend}, info)`` for ``graphs`` on ``backend``.

    ONNX graphs (onnxruntime, tensorrt) are exported into ``export_dir`` (default: the user cache for
    model hash ``mhash``) when missing or stale; TensorRT engines are built into the cache (beside the
    ONNX files, or ``engine_dir``) when stale. ``cuda_graph``: None captures CUDA graphs on CUDA when
    possible (the reason is reported when not), True requires them. ``info`` says what was exported,
    built or reused.
    """
    check_combination(backend, device, precision)
    if not graphs:
        raise ValueError(f"make_backends: no graphs to run on {backend}")
    info: dict = {"backend": backend, "device": device, "precision": precision}
    if backend == "torch":
        from wamdiff_ros.runtime.torch_backend import TorchBackend, require_cuda

        if device != "cpu":
            require_cuda(f"torch backend on device {device}")
            graphs = copy.deepcopy(list(graphs))  # one copy: the graphs keep sharing their weights
        specs = {g.name: g.spec() for g in graphs}
        capture = device == "cuda" if cuda_graph is None else cuda_graph
        try:
            backends = {g.name: TorchBackend(g, specs[g.name], device, precision, capture) for g in graphs}
        except RuntimeError as e:
            if cuda_graph or not capture or isinstance(e, BackendUnavailable):
                raise
            info["cuda_graph_skipped"] = f"capture failed: {e}"
            backends = {g.name: TorchBackend(g, specs[g.name], device, precision, False) for g in graphs}
        info["cuda_graph"] = any(b.describe()["cuda_graph"] for b in backends.values())
        return backends, info
    from wamdiff_ros.runtime.export import default_export_dir, ensure_export, graph_specs

    if not mhash:
        raise ValueError(f"make_backends: backend {backend} needs the model hash of the exported graphs")
    if backend == "onnxruntime":
        from wamdiff_ros.runtime.onnxruntime_backend import check_provider

        check_provider(device)
    else:
        from wamdiff_ros.runtime.tensorrt_backend import TensorRTBuilder

        builder = builder or TensorRTBuilder()
        builder.environment()
    out = Path(export_dir) if export_dir else default_export_dir(None, mhash)
    meta, reason = ensure_export(graphs, out, mhash, family, source)
    info.update(export_dir=str(out), exported=reason, model_hash=meta["model_hash"])
    specs = graph_specs(meta)
    names = [g.name for g in graphs]
    if backend == "onnxruntime":
        from wamdiff_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

        backends = {
            n: OnnxRuntimeBackend(out / specs[n].file, specs[n], device, precision, threads, io_binding, spinning)
            for n in names
        }
        return backends, info
    from wamdiff_ros.runtime.engine_cache import ensure_engines
    from wamdiff_ros.runtime.tensorrt_backend import TensorRTBackend

    statuses = ensure_engines(out, specs, precision, builder, engine_dir)
    engines = {
        n: {"path": str(st.path), "action": st.action, "reason": st.reason, "build_s": st.build_s}
        for n, st in statuses.items()
    }
    backends = {n: TensorRTBackend(statuses[n].path, specs[n], precision) for n in names}
    info["engines"] = engines
    return backends, info


__all__ = ["check_combination", "make_backends"]
