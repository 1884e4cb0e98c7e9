"""ONNX Runtime backend: one InferenceSession per graph, CPU provider (or CUDA provider when the
installed onnxruntime has it), inputs and outputs bound to torch tensors through I/O binding.

Session options (tuned on the 2-core CPU, see ``wamdiff bench model``): all graph optimisations,
``intra_op_threads`` threads (default 2), one inter-op thread, sequential execution. Outputs are
preallocated torch tensors at the graph's static shapes, bound once and overwritten by each run; an
input is bound again only when its buffer changes, and a run whose inputs are all the very tensors of the
previous run (a decoding loop's cache, token and position buffers, updated in place) skips the checks
and conversions too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wamdiff_ros.runtime.base import BackendUnavailable, GraphSpec, StepBackend, to_torch

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailable(
            f"onnxruntime: Python package 'onnxruntime' not importable ({e}); install it with "
            "`pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` (CUDA provider)"
        ) from e
    return onnxruntime


def check_provider(device: str) -> str:
    """The execution provider for ``device``; BackendUnavailable when this onnxruntime lacks it."""
    ort = import_onnxruntime()
    if device not in PROVIDERS:
        raise ValueError(f"onnxruntime backend: device expected one of {sorted(PROVIDERS)}, got {device!r}")
    provider = PROVIDERS[device]
    available = ort.get_available_providers()
    if provider not in available:
        raise BackendUnavailable(
            f"onnxruntime CUDA provider not available: onnxruntime {ort.__version__} has {available}; install "
            "onnxruntime-gpu built for your CUDA/cuDNN (`pip install onnxruntime-gpu`, without the CPU package) "
            "on a machine with an NVIDIA GPU, or use device cpu"
        )
    return provider


def session_options(intra_op_threads: int = 2, spinning: bool = True):
    """The tuned ``SessionOptions``; ``spinning=False`` stops idle worker threads busy-waiting (kinder
    to a core shared with other processes, a little slower when the cores are free)."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class OnnxRuntimeBackend(StepBackend):
    """One ONNX graph in an ONNX Runtime session.

    Args:
        path: the ONNX file.
        graph: its spec (from ``export.json``).
        device: ``cpu`` (CPUExecutionProvider) or ``cuda`` (CUDAExecutionProvider).
        intra_op_threads: ONNX Runtime intra-op threads (CPU provider).
        io_binding: bind torch input/output buffers (no output allocation per run); False uses
            ``session.run`` with numpy arrays.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        graph: GraphSpec,
        device: str = "cpu",
        precision: str = "fp32",
        intra_op_threads: int = 2,
        io_binding: bool = True,
        spinning: bool = True,
    ):
        super().__init__(graph, device, precision)
        if precision != "fp32":
            raise BackendUnavailable(
                "onnxruntime backend runs the fp32 ONNX graphs; fp16 is available with backend tensorrt "
                "(or torch on cuda)"
            )
        ort = import_onnxruntime()
        provider = check_provider(device)
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"onnxruntime backend: ONNX file {path} does not exist (run `wamdiff export`)")
        self.session = ort.InferenceSession(
            str(path), session_options(intra_op_threads, spinning), providers=[provider]
        )
        names = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if names != (graph.input_names, graph.output_names):
            raise ValueError(f"{path}: session I/O {names} differs from the export's spec of graph {graph.name!r}")
        self.threads = intra_op_threads
        self.io_binding = io_binding
        if io_binding:
            import torch

            self._binding = self.session.io_binding()
            self._bound: dict[str, tuple] = {}
            self._held: dict = {}
            self._given: dict = {}
            self._dtypes = {t.name: t.torch_dtype() for t in graph.inputs}
            self._outputs = {t.name: torch.empty(t.shape, dtype=t.torch_dtype(), device=device) for t in graph.outputs}
            for t in graph.outputs:
                self._bind(self._binding.bind_output, t.name, self._outputs[t.name])

    def _bind(self, bind, name: str, t) -> None:
        import numpy as np

        dev = "cuda" if t.is_cuda else "cpu"
        idx = t.device.index or 0
        bind(name, dev, idx, np.dtype(str(t.dtype).removeprefix("torch.")), tuple(t.shape), t.data_ptr())

    def run(self, inputs: Mapping) -> dict:
        if self.io_binding and self._rebound(inputs):
            return self._run_bound()
        self.check_inputs(inputs)
        if not self.io_binding:
            feed = {t.name: to_torch(inputs[t.name], "cpu", t.torch_dtype()).numpy() for t in self.graph.inputs}
            outs = self.session.run(None, feed)
            return {name: to_torch(o, self.device) for name, o in zip(self.graph.output_names, outs)}
        held = {}
        for t in self.graph.inputs:
            x = to_torch(inputs[t.name], self.device, self._dtypes[t.name])
            key = (x.data_ptr(), x.dtype, x.device)
            if self._bound.get(t.name) != key:
                self._bind(self._binding.bind_input, t.name, x)
                self._bound[t.name] = key
            held[t.name] = x
        self._held = held  # the bound buffers stay alive while bound
        self._given = {n: x for n, x in held.items() if inputs[n] is x}
        return self._run_bound()

    def _rebound(self, inputs: Mapping) -> bool:
        """Whether every input is the tensor bound by the previous run, used as is (no conversion)."""
        given = self._given
        return len(given) == len(inputs) == len(self.graph.inputs) and all(inputs.get(n) is x for n, x in given.items())

    def _run_bound(self) -> dict:
        if self.device == "cuda":
            self._binding.synchronize_inputs()
        self.session.run_with_iobinding(self._binding)
        if self.device == "cuda":
            self._binding.synchronize_outputs()
        return dict(self._outputs)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "providers": self.session.get_providers(),
            "intra_op_threads": self.threads,
            "io_binding": self.io_binding,
        }
