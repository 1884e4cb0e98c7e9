"""Resumable training state: a model checkpoint folder plus the optimiser, step counters and RNG state.

A resume folder (``<out>/last/``) is an ordinary model checkpoint (``config.json`` +
``model.safetensors``, loadable by any planner tool) with two more files:

- ``optimizer.safetensors``: every tensor of the optimiser state (``state.<param>.<name>``) and the
  global torch RNG state (``rng.torch``); no pickle;
- ``trainer_state.json``: step, epoch, position in the epoch, time spent, best metric, history, the
  optimiser's non-tensor state (param groups, scalar entries), and the SHA-256 of both weight files.

The folder is written whole under a temporary name and swapped in (:func:`replace_dir`), so a crash
leaves either the previous or the new folder; :func:`recover_dir` finishes an interrupted swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from wamdiff_ros.atomic import atomic_path, atomic_write_json
from wamdiff_ros.models.checkpoint import CheckpointError, _sha256, read_config

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
STATE_VERSION = 1


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<param>.<name>``) and a JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the complete folder ``tmp`` to ``target``, replacing an existing one with at most a moment
    in which ``target`` is absent (then :func:`recover_dir` finds the old one)."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}-{tempfile.mktemp(dir='').strip('/')[-8:]}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> Path | None:
    """``target`` if it exists; else the newest complete ``.<name>.old-*`` left by an interrupted
    :func:`replace_dir`, moved back to ``target``; else None."""
    target = Path(target)
    if target.is_dir():
        return target
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in olds:
        if (old / STATE_FILE).is_file() or (old / "config.json").is_file():
            os.replace(old, target)
            return target
    return None


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike):
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_training_state(folder: str | os.PathLike, model, optimizer: torch.optim.Optimizer, state: dict, meta: dict):
    """Write the resume folder ``folder`` (model checkpoint + optimiser + ``state``) atomically; ``model``
    writes the checkpoint with ``save(folder, meta)`` (a network or a planner)."""
    from safetensors.torch import save_file

    with staged_dir(folder) as tmp:
        model.save(tmp, meta)
        tensors, opt_meta = optimizer_tensors(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        with atomic_path(tmp / OPTIMIZER_FILE) as f:
            save_file(tensors, str(f))
        doc = {
            "version": STATE_VERSION,
            **state,
            "optimizer": opt_meta,
            "weights_sha256": read_config(tmp)["weights_sha256"],
            "optimizer_sha256": _sha256(tmp / OPTIMIZER_FILE),
        }
        atomic_write_json(tmp / STATE_FILE, doc)
    return Path(folder)


def load_training_state(folder: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Read ``trainer_state.json`` of a resume folder, check both weight files against it, restore
    ``optimizer`` and the global torch RNG; returns the state dict. The model weights are loaded by
    the caller. CheckpointError on any defect."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"resume folder {folder}: {STATE_FILE} is missing (not a training run's last/)")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"resume folder {folder}: {STATE_FILE} is not valid JSON: {e}") from e
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(
            f"resume folder {folder}: state version {state.get('version')!r}, expected {STATE_VERSION}"
        )
    if read_config(folder).get("weights_sha256") != state.get("weights_sha256"):
        raise CheckpointError(f"resume folder {folder}: model weights do not belong to {STATE_FILE}")
    opt_file = folder / OPTIMIZER_FILE
    if not opt_file.is_file() or _sha256(opt_file) != state.get("optimizer_sha256"):
        raise CheckpointError(f"resume folder {folder}: {OPTIMIZER_FILE} is missing or does not match {STATE_FILE}")
    tensors = load_file(str(opt_file))
    if optimizer is not None:
        try:
            restore_optimizer(optimizer, tensors, state["optimizer"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"resume folder {folder}: optimizer state does not fit the model: {e}") from e
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return state


__all__ = [
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "load_training_state",
    "optimizer_tensors",
    "recover_dir",
    "replace_dir",
    "restore_optimizer",
    "save_training_state",
    "staged_dir",
]
