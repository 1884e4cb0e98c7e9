"""The interface every inference backend implements: one exported graph, named tensors in and out.

Decoding loops (unmasking steps, the fast/slow gate) stay in Python; a backend runs one graph per
call (the scene encoder ``encode`` or a per-step graph ``step_*``). Graph I/O is described by
:class:`TensorSpec` lists taken from the export metadata (``export.json``), so every backend checks
its inputs against the same static shapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")

DTYPES: tuple[str, ...] = ("uint8", "int32", "int64", "float16", "float32", "bool")
"""Element types of graph I/O, by their numpy names."""


class BackendUnavailable(RuntimeError):
    """A backend (or its device or precision) cannot run on this machine; the message says what is
    missing and how to get it."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``name``, static ``shape`` (all dims > 0), ``dtype`` (numpy name)."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"TensorSpec {self.name!r}: dtype expected one of {DTYPES}, got {self.dtype!r}")
        if not all(isinstance(d, int) and d > 0 for d in self.shape):
            raise ValueError(f"TensorSpec {self.name!r}: expected a static shape (dims > 0), got {self.shape}")

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping) -> TensorSpec:
        return cls(str(d["name"]), tuple(int(x) for x in d["shape"]), str(d["dtype"]))

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


@dataclass(frozen=True)
class GraphSpec:
    """Name and I/O of one exported graph (``file`` is the ONNX file name beside ``export.json``)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    file: str = ""

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def io_shapes(self) -> dict[str, list[int]]:
        """``{tensor name: shape}`` over inputs and outputs (what an engine's bindings must match)."""
        return {t.name: list(t.shape) for t in (*self.inputs, *self.outputs)}

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping) -> GraphSpec:
        return cls(
            name,
            tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            str(d.get("file", "")),
        )


@dataclass
class GraphModule:
    """One graph a planner exports and a backend runs: a torch module with named, static-shape I/O.

    Attributes:
        name: graph name (also the ONNX file stem).
        module: ``torch.nn.Module`` whose ``forward(*inputs)`` returns a tuple in ``output_names`` order.
        input_names, output_names: I/O names, in argument / result order.
        example_inputs: torch tensors at the static shapes (tracing, shape specs).
        random_inputs: ``generator -> inputs`` valid for the graph (ids in range, raw pixels), for parity
            checks; None: standard normal floats and zero integers at the example shapes.
    """

    name: str
    module: Any
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    example_inputs: tuple
    random_inputs: Callable[[Any], tuple] | None = None

    def sample_inputs(self, seed: int = 0) -> dict:
        """Named random inputs (see ``random_inputs``) drawn from ``seed``."""
        import torch

        g = torch.Generator().manual_seed(seed)
        if self.random_inputs is not None:
            vals = self.random_inputs(g)
        else:
            vals = tuple(
                torch.randn(x.shape, generator=g) if x.is_floating_point() else torch.zeros_like(x)
                for x in self.example_inputs
            )
        return dict(zip(self.input_names, vals))

    def spec(self) -> GraphSpec:
        """The graph's I/O spec without exporting: inputs from the examples, outputs from one forward pass
        (on the module's device)."""
        import torch

        params = list(self.module.parameters())
        device = params[0].device if params else "cpu"
        with torch.inference_mode():
            outs = self.module(*(x.to(device) for x in self.example_inputs))

        def specs(names, tensors):
            return tuple(
                TensorSpec(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in zip(names, tensors)
            )

        return GraphSpec(self.name, specs(self.input_names, self.example_inputs), specs(self.output_names, outs))


class StepBackend(ABC):
    """Runs one graph. ``run`` takes every input by name (torch tensors or numpy arrays, any device)
    and returns torch tensors on the backend's device, by output name.

    Outputs may be buffers that the next ``run`` of the same backend overwrites (I/O binding, CUDA
    graphs, TensorRT bindings): copy what must outlive the next call.
    """

    name: str = ""

    def __init__(self, graph: GraphSpec, device: str = "cpu", precision: str = "fp32"):
        if device not in DEVICES:
            raise ValueError(f"{type(self).__name__}: device expected one of {DEVICES}, got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"{type(self).__name__}: precision expected one of {PRECISIONS}, got {precision!r}")
        self.graph = graph
        self.device = device
        self.precision = precision

    def check_inputs(self, inputs: Mapping) -> None:
        """ValueError naming the graph and the input when a name is missing or a shape differs."""
        for spec in self.graph.inputs:
            if spec.name not in inputs:
                raise ValueError(f"graph {self.graph.name!r}: input {spec.name!r} is missing (got {sorted(inputs)})")
            shape = tuple(inputs[spec.name].shape)
            if shape != spec.shape:
                raise ValueError(
                    f"graph {self.graph.name!r}: input {spec.name!r} expected shape {spec.shape}, got {shape}"
                )
        extra = set(inputs) - set(self.graph.input_names)
        if extra:
            raise ValueError(f"graph {self.graph.name!r}: unexpected inputs {sorted(extra)}")

    @abstractmethod
    def run(self, inputs: Mapping) -> dict:
        """Named inputs -> named outputs (torch tensors on this backend's device)."""

    def describe(self) -> dict:
        """What runs this graph (for logs, diagnostics and benchmark metadata)."""
        return {"backend": self.name, "graph": self.graph.name, "device": self.device, "precision": self.precision}


def to_torch(x, device: str = "cpu", dtype=None):
    """A contiguous torch tensor of ``x`` (numpy array or tensor) on ``device`` (no copy when it is one)."""
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"expected a torch tensor or numpy array, got {type(x).__name__}")
    return t.to(device=device, dtype=dtype if dtype is not None else t.dtype).contiguous()
