"""Inference backends for planners' exported graphs: torch (CPU/CUDA, CUDA graphs), ONNX Runtime and
TensorRT behind one per-graph interface (:mod:`.base`), made by :func:`.backends.make_backends`, ONNX
export (:mod:`.export`) and the TensorRT engine cache (:mod:`.engine_cache`). Nothing here knows a
planner family. Heavy imports happen on use, not on import."""

from __future__ import annotations

from wamdiff_ros.runtime.base import BACKENDS, BackendUnavailable, GraphModule

__all__ = ["BACKENDS", "BackendUnavailable", "GraphModule"]
