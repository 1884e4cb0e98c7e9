"""The scorer keeps its large temporaries in the heap: repeated allocations stop faulting pages in."""

import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import numpy as np
from wamdiff_ros.scoring.allocator import keep_heap
applied = keep_heap() if sys.argv[1] == "keep" else False
def step():  # ten 2 MB temporaries alive at once, then freed, as in one scoring call
    return sum(a.sum() for a in [np.ones(1 << 18) for _ in range(10)])
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, env=env)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt thresholds are glibc's (Linux)")
def test_keep_heap_stops_page_faults_of_repeated_large_temporaries():
    applied, kept = _faults("keep")
    assert applied == "True"
    _, default = _faults("default")
    assert default > 20 * 10 * 256  # the 2 MB arrays (512 pages each) faulted in again on every step
    assert kept < default / 20


def test_keep_heap_leaves_the_users_glibc_settings_alone():
    import os

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    assert _faults("keep", env)[0] == "False"
