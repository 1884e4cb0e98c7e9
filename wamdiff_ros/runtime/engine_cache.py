"""TensorRT engine cache: build an engine once per (ONNX file, precision, GPU, TensorRT version).

An engine ``<graph>.<precision>.engine`` sits beside its ONNX file (or in ``engine_dir``) with a key
file ``<graph>.<precision>.engine.json`` holding the :class:`EngineKey`, the engine's SHA-256 and its
I/O shapes. The engine is reused only when the key file exists, every key field matches, the engine
file is the one the key file describes and its I/O shapes are the graph's; otherwise it is rebuilt
and the reason is reported (a TensorRT upgrade, another GPU, a re-exported model …). Engine first,
key file last, both atomic: an interrupted build leaves no key file and is rebuilt next time.

The builder is injected (:class:`EngineBuilder`), so this logic runs and is tested without TensorRT;
:class:`wamdiff_ros.runtime.tensorrt_backend.TensorRTBuilder` is the real one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

from wamdiff_ros.atomic import atomic_write_bytes, atomic_write_json
from wamdiff_ros.runtime.base import PRECISIONS
from wamdiff_ros.runtime.export import sha256_file


class EngineBuilder(Protocol):
    """What the cache needs from a TensorRT builder."""

    def environment(self) -> tuple[str, str]:
        """``(GPU name, TensorRT version)`` of this machine (BackendUnavailable when absent)."""
        ...

    def build(self, onnx_path: Path, precision: str) -> bytes:
        """A serialized engine of the ONNX file at ``precision``."""
        ...

    def io_shapes(self, engine: bytes) -> dict[str, list[int]]:
        """``{tensor name: shape}`` of a serialized engine's I/O tensors."""
        ...


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for: the exact ONNX bytes, the precision, the GPU model and the
    TensorRT version (engines are not portable across either)."""

    onnx_sha256: str
    precision: str
    gpu: str
    tensorrt: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        return [
            f"{f.name} {getattr(other, f.name)!r} -> {getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


@dataclass
class EngineStatus:
    """Outcome of :func:`ensure_engine`: ``action`` is ``reused``, ``built`` or ``rebuilt``; ``reason``
    says why a build happened (None when reused); ``build_s`` the build's wall time."""

    path: Path
    key: EngineKey
    action: str
    reason: str | None = None
    build_s: float = 0.0


def engine_paths(onnx_path: str | os.PathLike, precision: str, engine_dir: str | os.PathLike | None = None):
    """``(engine file, key file)`` of an ONNX graph at ``precision``."""
    onnx_path = Path(onnx_path)
    folder = Path(engine_dir) if engine_dir else onnx_path.parent
    engine = folder / f"{onnx_path.stem}.{precision}.engine"
    return engine, engine.with_name(engine.name + ".json")


def engine_key(onnx_path: str | os.PathLike, precision: str, builder: EngineBuilder) -> EngineKey:
    if precision not in PRECISIONS:
        raise ValueError(f"engine precision: expected one of {PRECISIONS}, got {precision!r}")
    gpu, version = builder.environment()
    return EngineKey(sha256_file(onnx_path), precision, gpu, version)


def stale_reason(engine: Path, key_file: Path, key: EngineKey, io: dict[str, list[int]]) -> str | None:
    """Why the cached engine cannot be used (None: it can)."""
    if not engine.is_file():
        return f"no engine at {engine}"
    if not key_file.is_file():
        return f"no key file {key_file.name} (engine of unknown origin or interrupted build)"
    try:
        doc = json.loads(key_file.read_text())
        cached = EngineKey(**doc["key"])
        cached_io = {k: list(v) for k, v in doc["io"].items()}
        cached_sha = doc["engine_sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        return f"key file {key_file.name} unreadable ({type(e).__name__}: {e})"
    diff = key.differences(cached)
    if diff:
        return "key changed: " + "; ".join(diff)
    if cached_io != {k: list(v) for k, v in io.items()}:
        return f"I/O shapes changed: engine {cached_io}, graph {io}"
    if sha256_file(engine) != cached_sha:
        return "engine file differs from the one its key file describes"
    return None


def ensure_engine(
    onnx_path: str | os.PathLike,
    precision: str,
    builder: EngineBuilder,
    io: dict[str, list[int]],
    engine_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> EngineStatus:
    """A current engine for ``onnx_path`` at ``precision``: reuse the cached one when its key and I/O
    shapes ``io`` (``{tensor: shape}``, from the export metadata) match, else build and cache it.

    RuntimeError when the built engine's I/O shapes are not ``io`` (the engine is not written).
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ValueError(f"engine cache: ONNX file {onnx_path} does not exist (run `wamdiff export`)")
    key = engine_key(onnx_path, precision, builder)
    engine, key_file = engine_paths(onnx_path, precision, engine_dir)
    reason = "forced" if force else stale_reason(engine, key_file, key, io)
    if reason is None:
        return EngineStatus(engine, key, "reused")
    existed = engine.exists()
    t0 = time.perf_counter()
    data = builder.build(onnx_path, precision)
    build_s = time.perf_counter() - t0
    built_io = {k: list(v) for k, v in builder.io_shapes(data).items()}
    if built_io != {k: list(v) for k, v in io.items()}:
        raise RuntimeError(f"TensorRT engine of {onnx_path.name}: I/O shapes {built_io} differ from the graph's {io}")
    atomic_write_bytes(engine, data)
    atomic_write_json(
        key_file,
        {
            "key": asdict(key),
            "digest": key.digest(),
            "engine_sha256": hashlib.sha256(data).hexdigest(),
            "io": built_io,
            "onnx": onnx_path.name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "build_s": round(build_s, 3),
        },
    )
    return EngineStatus(engine, key, "rebuilt" if existed else "built", reason, build_s)


def ensure_engines(
    export_dir: str | os.PathLike,
    specs: dict,
    precision: str,
    builder: EngineBuilder,
    engine_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, EngineStatus]:
    """:func:`ensure_engine` for every graph of an export folder (``specs``: graph name -> GraphSpec)."""
    return {
        name: ensure_engine(Path(export_dir) / spec.file, precision, builder, spec.io_shapes(), engine_dir, force)
        for name, spec in specs.items()
    }
