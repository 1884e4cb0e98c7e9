"""Benchmark plumbing shared by every ``wamdiff bench …``: timing, a printed table, a JSON file."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np

from wamdiff_ros.atomic import atomic_write_json


def time_call(fn: Callable[[], object], iters: int, warmup: int = 3) -> dict:
    """Wall-clock statistics of ``fn()`` over ``iters`` calls after ``warmup`` calls, in ms."""
    for _ in range(warmup):
        fn()
    samples = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - t0) * 1e3
    return summarize_ms(samples)


def summarize_ms(samples) -> dict:
    s = np.asarray(samples, np.float64)
    return {
        "n": int(s.size),
        "mean_ms": float(s.mean()),
        "std_ms": float(s.std()),
        "p50_ms": float(np.percentile(s, 50)),
        "p99_ms": float(np.percentile(s, 99)),
        "min_ms": float(s.min()),
        "max_ms": float(s.max()),
    }


def machine_info() -> dict:
    info = {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(
    name: str,
    rows: list[dict],
    json_path: str | os.PathLike | None = None,
    meta: dict | None = None,
    targets: dict | None = None,
    columns: list[str] | None = None,
) -> dict:
    """Print ``rows`` as a table (only ``columns`` if given) and (optionally) write them, every key, with
    machine info to ``json_path``."""
    result = {
        "benchmark": name,
        "machine": machine_info(),
        "meta": meta or {},
        "targets": targets or {},
        "rows": rows,
        "unix_time": time.time(),
    }
    print_table(f"wamdiff bench {name}", rows, columns=columns)
    if targets:
        for k, v in targets.items():
            print(f"  target {k}: {v}")
    if json_path:
        atomic_write_json(json_path, result)
        print(f"  wrote {json_path}")
    return result


def print_table(title: str, rows: list[dict], width: int | None = None, columns: list[str] | None = None) -> None:
    """``rows`` as a rich table (``columns``: these keys only); ``width`` [characters] overrides the
    console's (a pipe gets 80)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(_fmt(r.get(c, "")) for c in cols))
    Console(width=width).print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)
