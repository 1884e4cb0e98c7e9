"""The planner interface every family implements, and the registry that loads a checkpoint by family.

A node, benchmark or RL run holds a :class:`Planner` and never needs to know which family it is:
``load_planner(path)`` reads the checkpoint's ``config.json``, finds its family and hands the folder
to that family's loader. Families register with :func:`register`; :data:`FAMILY_MODULES` says which
module to import for a family so loading needs no prior import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult

FAMILY_MODULES: dict[str, str] = {
    "wamdiff": "wamdiff_ros.planners.wamdiff",
    "constant_velocity": "wamdiff_ros.planners.constant_velocity",
}
"""Checkpoint family -> module that registers its loader (families add a line here as they land)."""

Loader = Callable[..., "Planner"]
_LOADERS: dict[str, Loader] = {}


@runtime_checkable
class Planner(Protocol):
    """A trajectory planner: one synchronised observation in, one plan out.

    Attributes:
        family: the checkpoint family (``wamdiff`` …).
        rig: the camera rig the model expects.
    """

    family: str
    rig: Rig

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        """Plan for ``obs`` within about ``budget_ms`` (None: no deadline). Raises ValueError on an
        observation that does not fit the rig."""
        ...


class RigMismatchError(ValueError):
    """The rig given at load time is not the rig the checkpoint was trained with."""


def register(family: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(path, rig=None, **options) -> Planner`` for ``family``."""

    def deco(loader: Loader) -> Loader:
        _LOADERS[family] = loader
        return loader

    return deco


def families() -> list[str]:
    return sorted(set(FAMILY_MODULES) | set(_LOADERS))


def checkpoint_family(path: str | os.PathLike) -> str:
    """The ``family`` recorded in a checkpoint folder's ``config.json`` (CheckpointError if unreadable)."""
    from wamdiff_ros.models.checkpoint import read_config

    return read_config(path)["family"]


def check_rig(expected: Rig, given: Rig | None, source: str) -> None:
    """Raise :class:`RigMismatchError` naming the difference when ``given`` is not ``expected``."""
    if given is None:
        return
    reason = expected.mismatch(given)
    if reason:
        raise RigMismatchError(
            f"{source}: rig {given.name!r} does not match the model's rig {expected.name!r}: {reason}"
        )


@dataclass(frozen=True)
class CheckpointCheck:
    """What :func:`check_checkpoint` found in a checkpoint folder that passed it.

    Attributes:
        folder: the checkpoint folder.
        family: its planner family.
        weights_verified: its weights matched the SHA-256 recorded in config.json; False when config.json
            records none (a family without weights, or a checkpoint from older code), so nothing was verified.
    """

    folder: Path
    family: str
    weights_verified: bool

    @property
    def summary(self) -> str:
        weights = "weights match their recorded SHA-256" if self.weights_verified else "weights not verified"
        detail = "" if self.weights_verified else " (config.json records no SHA-256)"
        return f"checkpoint {self.folder}: {self.family}, {weights}{detail}"


def check_checkpoint(path: str | os.PathLike, rig: Rig | None = None) -> CheckpointCheck:
    """The checks that need no model built, for refusing a checkpoint before a slow load: the folder and
    its config.json, a known family, the rig recorded in the config against ``rig`` (when both are given)
    and the weights against their recorded SHA-256. Raises ValueError (CheckpointError, RigMismatchError)
    with the reason."""
    from wamdiff_ros.models.checkpoint import read_config, verify_weights

    path = Path(path)
    doc = read_config(path)
    family = doc["family"]
    if family not in families():
        raise ValueError(f"checkpoint {path}: unknown planner family {family!r} (known: {families()})")
    recorded = doc["config"].get("rig")
    if rig is not None and recorded is not None:
        check_rig(Rig.from_dict(recorded, f"checkpoint {path}: config.json rig"), rig, f"checkpoint {path}")
    return CheckpointCheck(path, family, verify_weights(path, doc))


def load_planner(path: str | os.PathLike, rig: Rig | None = None, **options) -> Planner:
    """Load the checkpoint folder ``path`` with its family's loader.

    ``rig``: the rig the caller will feed; refused with :class:`RigMismatchError` (and the reason) if it
    differs from the checkpoint's rig. ``options`` go to the family's loader (e.g. ``mode``).
    """
    path = Path(path)
    family = checkpoint_family(path)
    if family not in _LOADERS and family in FAMILY_MODULES:
        importlib.import_module(FAMILY_MODULES[family])
    if family not in _LOADERS:
        raise ValueError(f"checkpoint {path}: unknown planner family {family!r} (known: {families()})")
    return _LOADERS[family](path, rig=rig, **options)
