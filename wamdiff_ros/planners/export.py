"""``wamdiff export``: the ONNX graphs a planner declares (:meth:`~wamdiff_ros.planners.base.Planner.graphs`),
with their metadata, and TensorRT engines built from them, for a checkpoint of any family.

Without ``--build-only`` the command also checks what it produced: ONNX Runtime against torch on
random inputs (max abs difference per output, fails above 1e-4), and for ``--format tensorrt`` each
engine against torch (1e-3 in fp32, 5e-2 in fp16). ``--build-only`` stops after writing the files
(Autoware's ``build_only``). A planner without graphs has nothing to export: the command says so and
exits 0.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wamdiff_ros.runtime.base import BackendUnavailable
from wamdiff_ros.runtime.export import DEFAULT_OPSET


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


def _planner(model: str | None, config: str | None):
    """``(planner, checkpoint folder or None)`` of ``--model`` or an untrained ``--config``."""
    from wamdiff_ros.planners.base import load_planner, untrained_planner

    if model:
        return load_planner(model), Path(model)
    if not config:
        raise ValueError("wamdiff export: give --model DIR (a checkpoint) or --config YAML (an untrained model)")
    return untrained_planner(config), None


def _run(args: argparse.Namespace) -> int:
    from wamdiff_ros.planners.base import planner_hash
    from wamdiff_ros.runtime.export import (
        compare_backends,
        default_export_dir,
        ensure_export,
        graph_specs,
        report_parity,
    )
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
    planner, folder = _planner(args.model, args.config)
    graphs = planner.graphs()
    if not graphs:
        print(f"{planner.family}: this planner has no graphs to export (it runs as it is on every backend)")
        return 0
    mhash = planner_hash(planner)
    out = Path(args.out) if args.out else default_export_dir(folder, mhash)
    meta, reason = ensure_export(graphs, out, mhash, planner.family, planner.source, args.opset, args.force)
    print(f"onnx: {out} ({'exported: ' + reason if reason else 'up to date'})")
    for g in meta["graphs"].values():
        shapes = ", ".join(f"{t['name']}{tuple(t['shape'])}" for t in g["inputs"] + g["outputs"])
        print(f"  {g['file']}: {shapes}")
    specs = graph_specs(meta)
    by_name = {g.name: g for g in graphs}
    torch_ref = {n: TorchBackend(by_name[n], s) for n, s in specs.items()}
    if args.format == "onnx":
        if args.build_only:
            return 0
        ort = {n: OnnxRuntimeBackend(out / s.file, s) for n, s in specs.items()}
        diffs = compare_backends(torch_ref, ort, lambda n: by_name[n].sample_inputs())
        return report_parity("onnxruntime", diffs)
    from wamdiff_ros.runtime.engine_cache import ensure_engines
    from wamdiff_ros.runtime.tensorrt_backend import TensorRTBackend

    statuses = ensure_engines(out, specs, args.precision, builder, args.engine_dir, args.force)
    for st in statuses.values():
        print(f"  engine {st.path}: {st.action}{' (' + st.reason + ')' if st.reason else ''}")
    if args.build_only:
        return 0
    trt = {n: TensorRTBackend(statuses[n].path, specs[n], args.precision) for n in specs}
    diffs = compare_backends(torch_ref, trt, lambda n: by_name[n].sample_inputs())
    return report_parity(f"tensorrt {args.precision}", diffs)


def export_in_subprocess(folder: str | os.PathLike, backend: str, timeout_s: float = 600.0) -> bool:
    """Bring the ONNX export of checkpoint ``folder`` up to date in a child process (``wamdiff export
    --build-only``) when ``backend`` runs exported graphs and the planner declares graphs; True if it ran.

    For a process that keeps planning meanwhile (the planner node's hot reload): an in-process export
    holds the GIL for seconds, loading the checkpoint to ask for its graphs does not.
    :func:`~wamdiff_ros.planners.base.load_planner` then finds the export current. RuntimeError with the
    child's output when it fails; the checkpoint's own errors (CheckpointError, ValueError) as loading raises them.
    """
    import subprocess
    import sys

    from wamdiff_ros.planners.base import load_planner

    if backend == "torch" or not load_planner(folder).graphs():
        return False
    cmd = [sys.executable, "-m", "wamdiff_ros.cli", "export", "--model", str(folder), "--build-only"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-1500:]
        raise RuntimeError(f"ONNX export of {folder} failed (exit {done.returncode}): {tail}")
    return True


__all__ = ["add_arguments", "export_in_subprocess", "main"]
