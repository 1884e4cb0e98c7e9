"""Keep the scorer's large temporaries in the heap instead of fresh page mappings.

Scoring a batch allocates hundreds of (G, N) float64 temporaries (1.3 MB each for 4,096 candidates on
the 4 s grid). glibc serves every allocation above its mmap threshold with a new mapping and unmaps it
on free, so the kernel faults each one in page by page on every call: 7,500 faults per 4,096-candidate
call, about a fifth of its CPU time on the development VM. :func:`keep_heap` raises the mmap threshold
(:data:`MMAP_THRESHOLD`) and the trim threshold (:data:`TRIM_THRESHOLD`) with ``mallopt``, so freed
temporaries are reused from the heap and memory up to the trim threshold stays with the process.

Process-wide and glibc only: elsewhere, or when the user set glibc's own ``MALLOC_MMAP_THRESHOLD_``
or ``MALLOC_TRIM_THRESHOLD_``, nothing changes. :func:`~wamdiff_ros.scoring.pdms.score` calls it once
per process, so every bulk scorer (labels, RL rewards, evaluation, on any Ray worker) gets it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

MMAP_THRESHOLD = 64 << 20
"""Allocations below this many bytes come from the heap [B]."""
TRIM_THRESHOLD = 256 << 20
"""Free memory at the heap's top above this is returned to the system [B]."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_heap() -> bool:
    """Apply the thresholds once per process; whether they are in effect (False: not glibc, or the
    user's environment sets them)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_heap"]
