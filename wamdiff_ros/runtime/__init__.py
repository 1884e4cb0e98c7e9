"""Inference backends for the planners' networks: torch (CPU/CUDA, CUDA graphs), ONNX Runtime and
TensorRT behind one per-graph interface (:mod:`.base`), ONNX export (:mod:`.export`) and the
TensorRT engine cache (:mod:`.engine_cache`). Heavy imports happen on use, not on import."""

from __future__ import annotations

from wamdiff_ros.runtime.base import BACKENDS, BackendUnavailable


def load_planner(folder, rig=None, **kwargs):
    """See :func:`wamdiff_ros.runtime.planner.load_planner`."""
    from wamdiff_ros.runtime.planner import load_planner as _load

    return _load(folder, rig=rig, **kwargs)


__all__ = ["BACKENDS", "BackendUnavailable", "load_planner"]
