"""A node process ends cleanly however many SIGINTs it gets: only the first one interrupts it.

``ros2 launch`` without a terminal forwards SIGINT to its nodes, which often had one already from their
process group (Ctrl-C, or a script signalling the group). With Python's default handler the second one
raises KeyboardInterrupt inside the node's cleanup (joining its threads, destroying its publishers), or,
once ``main`` has returned, kills the interpreter while it finalizes (Python restores the default action
then): a traceback or exit -2 instead of a clean exit. SIGTERM is left alone: it is how ``ros2 launch``
ends a node whose shutdown takes too long.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int])


def interrupt_once(main: F) -> F:
    """Decorator for a node executable's ``main``: SIGINT raises KeyboardInterrupt the first time only,
    and is ignored once ``main`` returns (the process is ending).

    The handler is installed before ``main`` calls ``rclpy.init``, so rclpy's own handler, installed
    there, shuts the context down on each signal and then calls this one. Main thread only.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        interrupted = False

        def handler(signum, frame):
            nonlocal interrupted
            if not interrupted:
                interrupted = True
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            return main(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return wrapper  # type: ignore[return-value]
