"""TensorRT backend (TensorRT ≥ 10 Python API): engines built from the exported ONNX graphs, I/O
bound to torch CUDA tensors, executed on a torch CUDA stream.

Build (:class:`TensorRTBuilder`): ``trt.Builder`` → explicit-batch network → ``trt.OnnxParser`` →
builder config with the workspace memory-pool limit, ``BuilderFlag.FP16`` for fp16 (TF32 cleared for
fp32) →
``build_serialized_network``. Run (:class:`TensorRTBackend`): ``trt.Runtime.deserialize_cuda_engine``
→ execution context → ``set_tensor_address`` of preallocated torch tensors → ``execute_async_v3`` on
a torch stream. ``tensorrt`` is imported only when one of these is used, so this module imports
everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wamdiff_ros.runtime.base import BackendUnavailable, GraphSpec, StepBackend, to_torch
from wamdiff_ros.runtime.torch_backend import require_cuda

MIN_MAJOR = 10


def import_tensorrt():
    """The ``tensorrt`` module, or BackendUnavailable saying what is missing and how to get it."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable(
            f"tensorrt: Python package 'tensorrt' not importable ({e}); install TensorRT ≥ {MIN_MAJOR} for "
            "your CUDA (`pip install tensorrt-cu12`, or NVIDIA's TensorRT .deb/.tar packages; on Jetson it "
            "comes with JetPack) on a machine with an NVIDIA GPU"
        ) from e
    major = int(trt.__version__.split(".")[0])
    if major < MIN_MAJOR:
        raise BackendUnavailable(
            f"tensorrt: version {trt.__version__} found, this backend needs ≥ {MIN_MAJOR} "
            "(named tensor I/O, execute_async_v3); upgrade TensorRT"
        )
    return trt


def _torch_dtype(trt, dtype):
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.int8: torch.int8,
        trt.uint8: torch.uint8,
        trt.bool: torch.bool,
    }
    if dtype not in table:
        raise ValueError(f"TensorRT tensor type {dtype} has no torch equivalent here")
    return table[dtype]


class TensorRTBuilder:
    """:class:`~wamdiff_ros.runtime.engine_cache.EngineBuilder` on the TensorRT Python API.

    Args:
        workspace_bytes: builder workspace memory-pool limit.
        device: CUDA device index whose GPU name keys the cache.
    """

    def __init__(self, workspace_bytes: int = 1 << 30, device: int = 0):
        if workspace_bytes <= 0:
            raise ValueError(f"TensorRTBuilder.workspace_bytes: expected > 0, got {workspace_bytes}")
        self.workspace_bytes = workspace_bytes
        self.device = device

    def environment(self) -> tuple[str, str]:
        import torch

        trt = import_tensorrt()
        require_cuda("tensorrt backend")
        return torch.cuda.get_device_name(self.device), trt.__version__

    def build(self, onnx_path: Path, precision: str) -> bytes:
        trt = import_tensorrt()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes(), path=str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT ONNX parser rejected {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if precision == "fp32":
            config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: no TF32 matmuls on Ampere and newer
        elif precision == "fp16":
            if not builder.platform_has_fast_fp16:
                raise BackendUnavailable(f"tensorrt: this GPU has no fast fp16 ({onnx_path.name}); use fp32")
            config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT could not build an engine of {onnx_path} ({precision}); see its log above")
        return bytes(serialized)

    def io_shapes(self, engine: bytes) -> dict[str, list[int]]:
        trt = import_tensorrt()
        eng = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine)
        if eng is None:
            raise RuntimeError("TensorRT could not deserialize the engine it just built")
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        return {n: [int(d) for d in eng.get_tensor_shape(n)] for n in names}


class TensorRTBackend(StepBackend):
    """One engine, bound to torch CUDA tensors at the graph's static shapes.

    Args:
        engine_path: serialized engine (from :func:`~wamdiff_ros.runtime.engine_cache.ensure_engine`).
        graph: the graph's spec; the engine's I/O names and shapes must match it.
        precision: recorded for reports (the engine carries its own precision).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, graph: GraphSpec, precision: str = "fp32", device: str = "cuda"):
        super().__init__(graph, device, precision)
        if device != "cuda":
            raise BackendUnavailable("tensorrt backend runs on CUDA devices only; set device cuda")
        trt = import_tensorrt()
        require_cuda("tensorrt backend")
        import torch

        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path} (built by another TensorRT version?)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        want = graph.io_shapes()
        got = {n: [int(d) for d in self.engine.get_tensor_shape(n)] for n in names}
        if got != want:
            raise ValueError(f"engine {engine_path}: I/O {got} differs from graph {graph.name!r} {want}")
        self._buffers = {}
        for n in names:
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(n))
            self._buffers[n] = torch.empty(want[n], dtype=dtype, device="cuda")
            if not self.context.set_tensor_address(n, self._buffers[n].data_ptr()):
                raise RuntimeError(f"TensorRT refused the address of tensor {n!r}")
        self._out_dtypes = {t.name: t.torch_dtype() for t in graph.outputs}

    def run(self, inputs: Mapping) -> dict:
        import torch

        self.check_inputs(inputs)
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            for t in self.graph.inputs:
                buf = self._buffers[t.name]
                buf.copy_(to_torch(inputs[t.name], "cuda"), non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution of graph {self.graph.name!r} failed")
        torch.cuda.current_stream().wait_stream(self.stream)
        return {n: self._buffers[n].to(dt) for n, dt in self._out_dtypes.items()}
