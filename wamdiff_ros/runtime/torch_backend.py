"""torch backend: a planner's :class:`~wamdiff_ros.runtime.base.GraphModule` run eagerly on CPU or CUDA,
optionally replayed as a captured CUDA graph (static input/output buffers, one launch per step).

fp16 runs under CUDA autocast (weights stay fp32); outputs are cast back to their fp32 specs so the
Python decoding loop sees one dtype whatever the backend.
"""

from __future__ import annotations

from collections.abc import Mapping

from wamdiff_ros.runtime.base import BackendUnavailable, GraphModule, GraphSpec, StepBackend, to_torch


def require_cuda(what: str) -> None:
    """BackendUnavailable unless torch sees a CUDA device."""
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise BackendUnavailable(
            f"{what}: torch CUDA not available (torch {torch.__version__} is {build}"
            f"{', no GPU visible' if torch.version.cuda else ''}); install a CUDA build of torch for your driver "
            "(https://pytorch.org/get-started/locally) on a machine with an NVIDIA GPU, or use device cpu"
        )


class TorchBackend(StepBackend):
    """One graph in torch.

    Args:
        module: the graph's module (moved to ``device``; graphs of one planner share their weights).
        graph: the graph's spec (name and static I/O).
        cuda_graph: capture the graph on CUDA and replay it (needs ``device='cuda'``).
    """

    name = "torch"

    def __init__(
        self,
        module: GraphModule,
        graph: GraphSpec,
        device: str = "cpu",
        precision: str = "fp32",
        cuda_graph: bool = False,
    ):
        super().__init__(graph, device, precision)
        import torch

        if device == "cuda":
            require_cuda("torch backend on device cuda")
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailable("torch backend: fp16 runs under CUDA autocast; set device cuda or use fp32")
        if cuda_graph and device != "cuda":
            raise BackendUnavailable("torch backend: CUDA graphs need device cuda (no CUDA on a CPU device)")
        self.module = module.module.to(device).eval()
        in_names, out_names = list(module.input_names), list(module.output_names)
        if in_names != graph.input_names or out_names != graph.output_names:
            raise ValueError(
                f"graph {graph.name!r}: module I/O {in_names}->{out_names} differs from the export's "
                f"{graph.input_names}->{graph.output_names}"
            )
        self._torch = torch
        self._out_dtypes = [t.torch_dtype() for t in graph.outputs]
        self._cuda_graph = None
        if cuda_graph:
            self._capture()

    def _forward(self, args: list) -> list:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=self.precision == "fp16"):
            outs = self.module(*args)
        return [o.to(dt) for o, dt in zip(outs, self._out_dtypes)]

    def _capture(self) -> None:
        """Warm up on a side stream, then capture one forward into a CUDA graph with static buffers."""
        torch = self._torch
        self._static_in = [torch.zeros(t.shape, dtype=t.torch_dtype(), device=self.device) for t in self.graph.inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_out = self._forward(self._static_in)
        self._cuda_graph = graph

    def run(self, inputs: Mapping) -> dict:
        self.check_inputs(inputs)
        args = [to_torch(inputs[t.name], self.device, t.torch_dtype()) for t in self.graph.inputs]
        if self._cuda_graph is None:
            outs = self._forward(args)
        else:
            for buf, x in zip(self._static_in, args):
                buf.copy_(x)
            self._cuda_graph.replay()
            outs = self._static_out
        return dict(zip(self.graph.output_names, outs))

    def describe(self) -> dict:
        return {**super().describe(), "cuda_graph": self._cuda_graph is not None}
