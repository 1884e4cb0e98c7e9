"""The contract every planner family implements, and the registry that loads a checkpoint by family.

A node, benchmark, export or RL run holds a :class:`Planner` and never needs to know which family it
is, nor probe it: every optional capability is declared here with a default that says "this family
does not have it".

==========================  =====================================================================
capability                  declared by
==========================  =====================================================================
reasoning modes             :attr:`Planner.modes` (empty: one path), :attr:`mode`, :meth:`set_mode`
warm-up                     :meth:`Planner.warm_up` (default: one plan)
ego history                 :attr:`Planner.history` (past poses wanted in ``Observation.ego_history``)
network                     :meth:`Planner.network` (None: nothing to train, hash or export)
exportable graphs           :meth:`Planner.graphs` and :meth:`Planner.with_backends`
supervised training         :meth:`Planner.supervised_task` (None: nothing to train)
RL                          :meth:`Planner.rl_policy` (None: not trainable by RL)
checkpoint                  :meth:`Planner.save`, :meth:`Planner.checkpoint_config`
untrained model of a YAML   :func:`register_untrained` (benchmarks and export before training)
==========================  =====================================================================

Families are found by :func:`load_planner` three ways: built-ins in :data:`FAMILY_MODULES`, installed
plug-ins under the ``wamdiff_ros.planners`` entry-point group (name = family, value = module), and
anything registered in-process with :func:`register`. :func:`load_planner` also puts a planner's graphs
on an inference backend (:mod:`wamdiff_ros.runtime`) through :meth:`Planner.with_backends`.
"""

from __future__ import annotations

import importlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from wamdiff_ros.rig import Rig
from wamdiff_ros.types import Observation, PlanResult, TrajectorySpec

if TYPE_CHECKING:
    import torch

    from wamdiff_ros.runtime.base import GraphModule, StepBackend

MODES: tuple[str, ...] = ("adaptive", "fast", "slow")
"""Reasoning modes a caller may ask for: the gate decides, or fast / slow forced."""

FAMILY_MODULES: dict[str, str] = {
    "wamdiff": "wamdiff_ros.planners.wamdiff",
    "constant_velocity": "wamdiff_ros.planners.constant_velocity",
    "autovla": "wamdiff_ros.planners.autovla",
    "diffusiondrive": "wamdiff_ros.planners.diffusiondrive",
    "trajmoe": "wamdiff_ros.planners.trajmoe",
}
"""Built-in family -> module that registers its loader (a new family adds one line here)."""

ENTRY_POINT_GROUP = "wamdiff_ros.planners"

Loader = Callable[..., "Planner"]
_LOADERS: dict[str, Loader] = {}
_UNTRAINED: dict[str, Loader] = {}


class RigMismatchError(ValueError):
    """The rig given at load time is not the rig the checkpoint was trained with."""


class Planner(ABC):
    """A trajectory planner: one synchronised observation in, one plan out.

    Required attributes (set by the family's constructor):
        family: the checkpoint family name (class attribute).
        rig: the camera rig the model expects.
        spec: the trajectory grid it plans on.

    Declared capabilities (override where the family has them):
        history: past ego poses wanted in ``Observation.ego_history`` (0: none).
        past_frame_s: age [s] of the camera set wanted in ``Observation.past_images`` (0: none).
        modes: reasoning modes the family can run (subset of :data:`MODES`; empty: one path only).
        source: where the model came from (recorded in ``PlanResult.info`` and logs).
        runtime: what runs the graphs when not the eager torch planner (backend, device, export …;
            set by :meth:`with_backends`; empty: eager).
    """

    family: ClassVar[str] = ""
    rig: Rig
    spec: TrajectorySpec
    history: int = 0
    past_frame_s: float = 0.0
    modes: tuple[str, ...] = ()
    source: str = ""
    runtime: dict = {}  # noqa: RUF012 (read-only default; with_backends sets a planner's own)

    @abstractmethod
    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        """Plan for ``obs`` within about ``budget_ms`` (None: no deadline). Raises ValueError on an
        observation that does not fit the rig."""

    # -- reasoning modes -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The reasoning mode in force (``fast`` for a family with one path)."""
        return "fast"

    def set_mode(self, mode: str) -> None:
        """Ask for reasoning ``mode`` (one of :data:`MODES`). A family with one path plans that path
        whatever is asked; a family with modes refuses one it lacks (ValueError naming both)."""
        if mode not in MODES:
            raise ValueError(f"reasoning mode: expected one of {MODES}, got {mode!r}")
        if self.modes and mode not in self.modes:
            raise ValueError(f"{self.family}: reasoning mode {mode!r} is not one of {self.modes}")

    # -- lifecycle -----------------------------------------------------------------------------------
    def warm_up(self, obs: Observation) -> float:
        """Run every path once on ``obs`` so the first real frame is not the slow one; returns the
        time of the last warm-up plan [ms]."""
        t0 = time.perf_counter()
        self.plan(obs, None)
        return (time.perf_counter() - t0) * 1e3

    # -- network, export, RL -------------------------------------------------------------------------
    def network(self) -> torch.nn.Module | None:
        """The torch module holding every trained weight (None: a planner without weights)."""
        return None

    def checkpoint_config(self) -> dict:
        """The ``config`` mapping of the checkpoint (with everything needed to rebuild the network)."""
        return {"rig": self.rig.to_dict(), "spec": self.spec.to_dict()}

    def save(self, folder: str | os.PathLike, meta: dict | None = None) -> Path:
        """Write a checkpoint folder (``config.json`` [+ ``model.safetensors``]); returns it."""
        from wamdiff_ros.models.checkpoint import save_checkpoint

        net = self.network()
        state = net.state_dict() if net is not None else None
        return save_checkpoint(folder, self.family, self.checkpoint_config(), state, meta or {})

    def graphs(self, batch: int = 1) -> list[GraphModule]:
        """The static-shape graphs the planner's loop calls (exported to ONNX, run by a backend);
        empty when there is nothing to export."""
        return []

    def with_backends(self, backends: dict[str, StepBackend], info: dict) -> Planner:
        """A planner with the same weights and options whose :meth:`graphs` run on ``backends`` (graph
        name -> backend); ``info`` (what was exported, built or reused) goes into ``runtime``."""
        if self.graphs():
            raise NotImplementedError(f"{self.family}: declares graphs but cannot run them on a backend")
        return self

    def rl_policy(self, **settings: Any):
        """A :class:`~wamdiff_ros.training.rl.policy.Policy` around this planner's weights (None: the
        family has no RL fine-tuning). ``settings`` are the run's family options."""
        return None

    def supervised_task(self, **settings: Any):
        """A :class:`~wamdiff_ros.training.task.SupervisedTask` training this planner's weights from
        logged drives (None: the family has nothing to train). ``settings`` are the family's options
        from the training config."""
        return None

    def model_size_bytes(self) -> int:
        net = self.network()
        return 0 if net is None else sum(p.numel() * p.element_size() for p in net.parameters())

    def describe(self) -> dict:
        """What this planner is, for logs, diagnostics and benchmark metadata."""
        return {
            "family": self.family,
            "source": self.source,
            "rig": self.rig.name,
            "modes": list(self.modes),
            "mode": self.mode,
            "history": self.history,
            "past_frame_s": self.past_frame_s,
            "spec": self.spec.to_dict(),
            "size_bytes": self.model_size_bytes(),
            "runtime": self.runtime,
        }


def register(family: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(path, rig=None, **options) -> Planner`` for ``family``."""

    def deco(loader: Loader) -> Loader:
        _LOADERS[family] = loader
        return loader

    return deco


def register_untrained(family: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``build(config_yaml, seed=0, **options) -> Planner``: an untrained planner of
    a model config file (benchmarks and export of a model not trained yet)."""

    def deco(build: Loader) -> Loader:
        _UNTRAINED[family] = build
        return build

    return deco


def _plugin_modules() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def families() -> list[str]:
    """Every family :func:`load_planner` can load here."""
    return sorted(set(FAMILY_MODULES) | set(_plugin_modules()) | set(_LOADERS))


def family_loader(family: str, source: str = "") -> Loader:
    """The registered loader of ``family``, importing its module first when needed."""
    if family not in _LOADERS:
        module = FAMILY_MODULES.get(family) or _plugin_modules().get(family)
        if module:
            importlib.import_module(module)
    if family not in _LOADERS:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}unknown planner family {family!r} (known: {families()})")
    return _LOADERS[family]


def untrained_planner(config: str | os.PathLike, seed: int = 0, **options) -> Planner:
    """An untrained planner of the model config file ``config`` (its ``family:`` key picks the family;
    weights drawn from ``seed``), labelled ``untrained``. ValueError when the family cannot build one."""
    from wamdiff_ros.config import load_yaml

    family = load_yaml(config).get("family")
    if not isinstance(family, str):
        raise ValueError(f"model config {config}: expected a 'family' name, got {family!r}")
    family_loader(family, f"model config {config}")
    if family not in _UNTRAINED:
        raise ValueError(f"model config {config}: the {family!r} family cannot build an untrained planner")
    return _UNTRAINED[family](config, seed=seed, **options)


def checkpoint_family(path: str | os.PathLike) -> str:
    """The ``family`` recorded in a checkpoint folder's ``config.json`` (CheckpointError if unreadable)."""
    from wamdiff_ros.models.checkpoint import read_config

    return read_config(path)["family"]


def load_planner(
    path: str | os.PathLike,
    rig: Rig | None = None,
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "fp32",
    threads: int = 0,
    engine_path: str | os.PathLike | None = None,
    build_only: bool = False,
    cuda_graph: bool | None = None,
    spinning: bool = True,
    **options,
) -> Planner:
    """Load the checkpoint folder ``path`` with its family's loader, its graphs on an inference backend.

    Args:
        path: checkpoint folder (``config.json`` [+ ``model.safetensors``]).
        rig: the rig the caller feeds (:class:`RigMismatchError` naming the difference when the model's differs).
        backend: ``torch`` | ``onnxruntime`` | ``tensorrt``.
        device: ``cpu`` | ``cuda``.
        precision: ``fp32`` | ``fp16`` (tensorrt; torch on cuda).
        threads: inference CPU threads: ONNX Runtime's intra-op threads, or torch's (set process-wide);
            0: the backend's default (ONNX Runtime 2, torch as the process has it).
        engine_path: folder for the TensorRT engines (default: beside the ONNX files).
        build_only: bring every artefact up to date (ONNX export, TensorRT engines) for a caller that
            stops after one verification plan (recorded in ``runtime``); the planner is returned all the same.
        cuda_graph: torch on CUDA: None captures when possible, True requires it, False never.
        spinning: ONNX Runtime's idle intra-op workers busy-wait (faster when the cores are free; False for
            a process that shares its cores, such as a node on a vehicle computer).
        options: passed to the family's loader (``mode``, ``scenario`` …).

    The torch backend on CPU in fp32 (no CUDA graph) is the family's own eager planner, and so is a
    planner without graphs on any backend. ValueError for a bad combination or an unknown family,
    BackendUnavailable (naming what is missing and how to get it) when this machine cannot run it.
    """
    from wamdiff_ros.runtime.backends import check_combination
    from wamdiff_ros.runtime.export import default_export_dir

    check_combination(backend, device, precision)
    if threads and backend == "torch":
        import torch

        torch.set_num_threads(threads)
    path = Path(path)
    planner = family_loader(checkpoint_family(path), f"checkpoint {path}")(path, rig=rig, **options)
    if backend == "torch" and device == "cpu" and precision == "fp32" and not cuda_graph:
        return planner
    export_dir = None if backend == "torch" else default_export_dir(path, planner_hash(planner))
    out = on_backend(
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
    if out is not planner:
        out.runtime = {**out.runtime, "build_only": build_only}
    return out


def on_backend(planner: Planner, backend: str, **kwargs) -> Planner:
    """``planner`` with its graphs on ``backend`` (``planner`` itself when it has no graphs); ``kwargs`` go
    to :func:`~wamdiff_ros.runtime.backends.make_backends` (device, precision, export_dir …)."""
    from wamdiff_ros.runtime.backends import make_backends

    graphs = planner.graphs()
    if not graphs:
        return planner
    kwargs.setdefault("source", planner.source)
    backends, info = make_backends(graphs, backend, planner_hash(planner), planner.family, **kwargs)
    return planner.with_backends(backends, info)


def planner_hash(planner: Planner) -> str:
    """The model hash of ``planner`` (its checkpoint config and weights) that keys its exports."""
    from wamdiff_ros.runtime.export import model_hash

    net = planner.network()
    return model_hash(planner.checkpoint_config(), net.state_dict() if net is not None else None)


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
