"""Planners whose network runs on an inference backend: the WAM-Diff decoding loop stays in Python
(:class:`~wamdiff_ros.planners.wamdiff.WamDiffPlanner`) and every network call goes to a
:class:`~wamdiff_ros.runtime.base.StepBackend` of the matching exported graph.

:class:`BackendNet` stands in for :class:`~wamdiff_ros.models.net.WamDiffNet` in the planner: it
answers ``encode`` and ``step`` with the backends and delegates everything else (config, layout,
token space, parameters) to the torch network it was built from. Logits come back to the CPU for the
decoding loop; key/value caches stay on the backend's device between steps.

MoE routing statistics come from the graphs' ``router_probs`` / ``router_gates`` outputs, so
``PlanResult.moe`` is the same on every backend (exports made before those outputs existed give none).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from wamdiff_ros.runtime.base import BACKENDS, DEVICES, PRECISIONS, BackendUnavailable, StepBackend


class BackendNet:
    """A :class:`WamDiffNet` look-alike whose ``encode``/``step`` run on ``backends`` (graph name ->
    StepBackend: ``encode``, ``step_traj_fast``, ``step_text``, ``step_traj_slow``)."""

    def __init__(self, net, backends: dict[str, StepBackend]):
        from wamdiff_ros.models.export import GRAPHS

        missing = set(GRAPHS) - set(backends)
        if missing:
            raise ValueError(f"BackendNet: backends for graphs {sorted(missing)} are missing")
        self._net = net
        self.backends = backends
        lay = net.layout
        self._steps = {
            (lay.traj_offset, lay.prefix_len): "step_traj_fast",
            (lay.text_offset, lay.prefix_len): "step_text",
            (lay.traj_offset, lay.prefix_len + lay.text_len): "step_traj_slow",
        }

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._net, name)

    def eval(self) -> BackendNet:
        return self

    def describe(self) -> dict[str, dict]:
        return {name: b.describe() for name, b in self.backends.items()}

    def encode(self, images, ego, prompt, collect_stats: bool = False):
        """As :meth:`WamDiffNet.encode`: prefix key/values (on the backend's device), complexity logit
        (CPU), MoE aux (per layer ``probs``/``gates``) with ``collect_stats``."""
        out = self.backends["encode"].run({"images": images, "ego": ego, "prompt": prompt})
        return out["prefix_kv"], out["complexity"].float().cpu(), router_aux(out) if collect_stats else []

    def step(self, prefix_kv, ids, offset: int, collect_stats: bool = False):
        """As :meth:`WamDiffNet.step`: logits (CPU, a fresh tensor), the block's key/values (device), MoE
        aux with ``collect_stats``."""
        key = (offset, int(prefix_kv.shape[4]))
        if key not in self._steps:
            raise ValueError(f"BackendNet.step: no exported graph for offset {offset} on a {key[1]}-token prefix")
        out = self.backends[self._steps[key]].run({"prefix_kv": prefix_kv, "ids": ids})
        aux = router_aux(out) if collect_stats else []
        return out["logits"].float().cpu().clone(), out["block_kv"], aux


def router_aux(out: dict) -> list[dict]:
    """Per-layer ``{"probs", "gates"}`` (B, N, E) CPU copies of a graph's router outputs (backends may
    reuse their output buffers on the next run), as the torch modules' aux; [] without them."""
    if "router_probs" not in out:
        return []
    probs, gates = (out[k].float().cpu().clone() for k in ("router_probs", "router_gates"))
    return [{"probs": p, "gates": g} for p, g in zip(probs, gates)]


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
    net,
    backend: str,
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
    """``({graph: StepBackend}, info)`` for ``net`` on ``backend``.

    ONNX graphs (onnxruntime, tensorrt) are exported into ``export_dir`` when missing or stale;
    TensorRT engines are built into the cache (beside the ONNX files, or ``engine_dir``) when stale.
    ``cuda_graph``: None captures CUDA graphs on CUDA when possible (the reason is reported when not),
    True requires them. ``info`` says what was exported, built or reused.
    """
    from wamdiff_ros.models.export import GRAPHS

    check_combination(backend, device, precision)
    info: dict = {"backend": backend, "device": device, "precision": precision}
    if backend == "torch":
        from wamdiff_ros.runtime.export import graph_specs_of_net
        from wamdiff_ros.runtime.torch_backend import TorchBackend, require_cuda

        if device != "cpu":
            require_cuda(f"torch backend on device {device}")
            net = copy.deepcopy(net)
        specs = graph_specs_of_net(net)
        capture = device == "cuda" if cuda_graph is None else cuda_graph
        try:
            backends = {n: TorchBackend(net, specs[n], device, precision, capture) for n in GRAPHS}
        except RuntimeError as e:
            if cuda_graph or not capture or isinstance(e, BackendUnavailable):
                raise
            info["cuda_graph_skipped"] = f"capture failed: {e}"
            backends = {n: TorchBackend(net, specs[n], device, precision, False) for n in GRAPHS}
        info["cuda_graph"] = any(b.describe()["cuda_graph"] for b in backends.values())
        return backends, info
    from wamdiff_ros.runtime.export import default_export_dir, ensure_export, graph_specs, model_hash

    if backend == "onnxruntime":
        from wamdiff_ros.runtime.onnxruntime_backend import check_provider

        check_provider(device)
    else:
        from wamdiff_ros.runtime.tensorrt_backend import TensorRTBuilder

        builder = builder or TensorRTBuilder()
        builder.environment()
    out = Path(export_dir) if export_dir else default_export_dir(None, model_hash(net))
    meta, reason = ensure_export(net, out, source)
    info.update(export_dir=str(out), exported=reason, model_hash=meta["model_hash"])
    specs = graph_specs(meta)
    if backend == "onnxruntime":
        from wamdiff_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

        backends = {
            n: OnnxRuntimeBackend(out / specs[n].file, specs[n], device, precision, threads, io_binding, spinning)
            for n in GRAPHS
        }
        return backends, info
    from wamdiff_ros.runtime.engine_cache import ensure_engines
    from wamdiff_ros.runtime.tensorrt_backend import TensorRTBackend

    statuses = ensure_engines(out, specs, precision, builder, engine_dir)
    engines = {
        n: {"path": str(st.path), "action": st.action, "reason": st.reason, "build_s": st.build_s}
        for n, st in statuses.items()
    }
    backends = {n: TensorRTBackend(statuses[n].path, specs[n], precision) for n in GRAPHS}
    info["engines"] = engines
    return backends, info


def backend_planner(planner, backend: str, **kwargs):
    """A copy of a WamDiffPlanner (same network, options and gate settings) running on ``backend``;
    ``kwargs`` go to :func:`make_backends`."""
    from wamdiff_ros.planners.wamdiff import WamDiffPlanner

    backends, info = make_backends(planner.net, backend, source=planner.source, **kwargs)
    out = WamDiffPlanner(
        BackendNet(planner.net, backends),
        mode=planner.mode,
        scenario=planner.scenario,
        collect_stats=planner.collect_stats,
        source=planner.source,
    )
    out.generator = planner.generator
    out.runtime = info
    return out


def export_in_subprocess(folder: str | os.PathLike, backend: str, timeout_s: float = 600.0) -> bool:
    """Bring the ONNX export of checkpoint ``folder`` up to date in a child process (``wamdiff export
    --build-only``) when ``backend`` runs exported graphs and the checkpoint has a network; True if it ran.

    For a process that keeps planning meanwhile (the planner node's hot reload): an in-process export
    holds the GIL for seconds (measured here: plans of 97 ms mean / 323 ms max instead of 19 ms during
    a 3 s export). :func:`load_planner` then finds the export current. RuntimeError with the child's
    output when it fails.
    """
    import subprocess
    import sys

    from wamdiff_ros.models.checkpoint import read_config

    if backend == "torch" or read_config(folder)["family"] != "wamdiff":
        return False
    cmd = [sys.executable, "-m", "wamdiff_ros.cli", "export", "--model", str(folder), "--build-only"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-1500:]
        raise RuntimeError(f"ONNX export of {folder} failed (exit {done.returncode}): {tail}")
    return True


def load_planner(
    folder: str | os.PathLike,
    rig=None,
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "fp32",
    engine_path: str | os.PathLike | None = None,
    build_only: bool = False,
    threads: int = 0,
    cuda_graph: bool | None = None,
    spinning: bool = True,
    **options,
):
    """Load a checkpoint folder as a planner on an inference backend (the planner node's entry point).

    Args:
        folder: checkpoint folder (``config.json`` + ``model.safetensors``).
        rig: the rig the caller feeds (RigMismatchError when the model's differs).
        backend: ``torch`` | ``onnxruntime`` | ``tensorrt``.
        device: ``cpu`` | ``cuda``.
        precision: ``fp32`` | ``fp16`` (tensorrt; torch on cuda).
        engine_path: folder for the TensorRT engines (default: beside the ONNX files).
        build_only: bring every artefact up to date (ONNX export, TensorRT engines) for a caller that
            stops after one verification plan; the planner is returned all the same.
        threads: inference CPU threads: ONNX Runtime's intra-op threads, or torch's (set process-wide);
            0: the backend's default (ONNX Runtime 2, torch as the process has it).
        spinning: ONNX Runtime's idle intra-op workers busy-wait (faster when the cores are free; False for
            a process that shares its cores, such as a node on a vehicle computer).
        cuda_graph: torch on CUDA: None captures when possible, True requires it, False never.
        options: passed to the family's planner (``mode``, ``scenario`` …).

    The torch backend on CPU in fp32 is the family's own eager planner. A checkpoint without a network
    (constant_velocity) is returned as loaded, whatever the backend.
    Raises ValueError for a bad combination, BackendUnavailable (naming what is missing and how to get
    it) when this machine cannot run it.
    """
    from wamdiff_ros.planners.base import load_planner as load_family
    from wamdiff_ros.runtime.export import default_export_dir, model_hash

    check_combination(backend, device, precision)
    if threads and backend == "torch":
        import torch

        torch.set_num_threads(threads)
    planner = load_family(folder, rig=rig, **options)
    if not hasattr(planner, "net"):
        return planner
    if backend == "torch" and device == "cpu" and precision == "fp32" and not cuda_graph:
        return planner
    export_dir = None if backend == "torch" else default_export_dir(folder, model_hash(planner.net))
    out = backend_planner(
        planner,
        backend,
        device=device,
        precision=precision,
        export_dir=export_dir,
        engine_dir=engine_path,
        cuda_graph=cuda_graph,
        spinning=spinning,
        **({"threads": threads} if threads else {}),
    )
    out.runtime["build_only"] = build_only
    return out
