"""Task functions for the fan-out tests; the tests ship this module to Ray workers by value."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square_slowly(item: tuple[int, float]) -> tuple[int, int]:
    """``(i, i²)`` after sleeping the item's delay (later items finish first when delays fall)."""
    i, delay = item
    time.sleep(delay)
    return i, i * i


def square_or_die_once(item: tuple[int, str]) -> tuple[int, int]:
    """``(i, i²)``; item 1 kills its own worker process the first time (a marker file remembers)."""
    i, marker = item
    if i == 1 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return i, i * i


def fail_on_two(item: tuple[int, str]) -> int:
    """Raises for item 2, noting each try in the file named by the item."""
    i, tries = item
    if i == 2:
        with open(tries, "a") as f:
            f.write("try\n")
        raise ValueError("item 2 is bad")
    return i
