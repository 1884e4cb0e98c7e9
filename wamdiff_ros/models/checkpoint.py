"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (no pickle anywhere).

``config.json`` carries the family, the model config (sizes, rig, trajectory spec, vocabulary …),
a format version and the SHA-256 of the weights file, so a weights file that does not belong to its
config (torn copy, partial download, swapped file) is refused. A config that records no SHA-256 (written
by hand or by older code) is loaded unverified. Both files are written atomically,
weights first and config last, so a reader never pairs a new config with old weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from wamdiff_ros.atomic import atomic_path, atomic_write_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, corrupt or does not fit the code that loads it."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike, family: str, config: dict, tensors: dict | None, meta: dict | None = None
) -> Path:
    """Write ``tensors`` (name -> torch.Tensor; None: a planner without weights, ``config.json`` only)
    and ``config`` into the folder ``path``; returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    doc: dict = {"family": family, "format_version": FORMAT_VERSION}
    if tensors is not None:
        from safetensors.torch import save_file

        flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(flat, str(tmp), metadata={"family": family})
        doc["weights_sha256"] = _sha256(path / WEIGHTS_FILE)
    doc.update(meta=meta or {}, config=config)
    atomic_write_json(path / CONFIG_FILE, doc)
    return path


def read_config(path: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of checkpoint folder ``path`` (keys family, config, …)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not a folder (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} is missing")
    try:
        doc = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("family"), str) or not isinstance(doc.get("config"), dict):
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} needs a 'family' string and a 'config' mapping")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format_version {doc.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    return doc


def verify_weights(path: str | os.PathLike, doc: dict) -> bool:
    """Check the folder's weights file against the SHA-256 that its config document ``doc`` records.

    True when it matches; False when ``doc`` records none (nothing to verify against). CheckpointError
    naming the file when it is missing, truncated, corrupt or from another checkpoint.
    """
    expected = doc.get("weights_sha256")
    if expected is None:
        return False
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is missing ({CONFIG_FILE} records its SHA-256)")
    if _sha256(weights) != expected:
        raise CheckpointError(
            f"checkpoint {path}: {WEIGHTS_FILE} ({weights.stat().st_size} bytes) does not match the SHA-256 "
            f"recorded in {CONFIG_FILE} (truncated, corrupt or from another checkpoint)"
        )
    return True


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[dict, dict]:
    """``(config.json document, tensors)``; checks the weights' SHA-256 against the config (see
    :func:`verify_weights`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    doc = read_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is missing")
    if verify:
        verify_weights(path, doc)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot read {WEIGHTS_FILE}: {e}") from e
    return doc, tensors


def load_state(module, tensors: dict, source: str) -> None:
    """``module.load_state_dict(tensors)`` with missing/unexpected/mis-shaped keys as CheckpointError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"checkpoint {source}: weights do not fit the model built from its config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:5]})"
        )
    module.load_state_dict(tensors, strict=True)
