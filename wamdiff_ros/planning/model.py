"""The planner as planner_node configures it, without ROS: find the checkpoint, load it on the chosen
backend for a rig, set the reasoning mode, warm it up and check one plan. ``planner_node`` (configure,
hot reload) and ``wamdiff closedloop`` (each episode) load through here, so both run the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wamdiff_ros.paths import resolve
from wamdiff_ros.rig import Rig
from wamdiff_ros.types import EgoState, Observation


def resolve_model(path: str) -> Path:
    """A checkpoint folder: as given, else under ``models/``; ValueError if there is no config.json."""
    try:
        folder = resolve(path, "models")
    except FileNotFoundError as e:
        raise ValueError(f"model_path {path!r}: {e}") from e
    if not (folder / "config.json").is_file():
        raise ValueError(f"model_path {path!r}: {folder} is not a checkpoint folder (no config.json)")
    return folder


def prepare_planner(planner, rig: Rig, reasoning_mode: str, source: str):
    """Set ``reasoning_mode``, warm every path up and plan a blank frame of ``rig``; ValueError (naming
    ``source``) unless that plan is a finite trajectory of the planner's grid. Returns ``planner``."""
    planner.set_mode(reasoning_mode)
    spec = planner.spec
    images = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in rig.cameras}
    blank = Observation(images=images, ego=EgoState(pose=np.zeros(3)), stamp_ns=0, past_images=images)
    planner.warm_up(blank)  # every path run once (a gate's slow-path cost measured warm)
    result = planner.plan(blank, None)
    if result.trajectory.poses.shape != (spec.num_poses, 3) or not np.isfinite(result.trajectory.poses).all():
        raise ValueError(f"{source}: warm-up plan is not a finite ({spec.num_poses}, 3) trajectory")
    return planner


def load_checked_planner(params: dict, rig: Rig):
    """Load the checkpoint of ``params['model_path']`` for ``rig``, warm it up and plan a blank frame.

    ``params`` holds planner_node's parameters of the same names (``model_path``, ``backend``,
    ``device``, ``precision``, ``engine_path``, ``build_only``, ``threads``, ``reasoning_mode``,
    ``rig_path``). Raises (ValueError and friends) if the folder, the family, the rig, the backend or a
    warm-up plan fails, so a bad checkpoint never replaces a working one. Returns ``(planner, folder)``.
    """
    from wamdiff_ros.planners.base import load_planner

    folder = resolve_model(params["model_path"])
    planner = load_planner(
        folder,
        rig=rig,
        backend=params["backend"],
        device=params["device"],
        precision=params["precision"],
        engine_path=params["engine_path"] or None,
        build_only=params["build_only"],
        threads=int(params.get("threads", 0)),
        spinning=False,  # idle ONNX Runtime workers must not busy-wait on cores other nodes share
    )
    mismatch = rig.mismatch(planner.rig)
    if mismatch:
        raise ValueError(f"checkpoint {folder}: rig differs from {params['rig_path']}: {mismatch}")
    return prepare_planner(planner, rig, params["reasoning_mode"], f"checkpoint {folder}"), folder


__all__ = ["load_checked_planner", "prepare_planner", "resolve_model"]
