"""Ray task fan-out: run one function over many items on Ray workers, results in item order.

``--workers N`` (default: one per core) starts a local Ray with ``N`` CPUs for the command and
stops it at the end; ``--address HOST:PORT`` (or ``RAY_ADDRESS``) joins an existing cluster instead.
``--workers 1`` without an address calls the same function in this process, in order, without
importing Ray, so its output is the reference a parallel run must reproduce. A command that fans out
more than once (every RL step) keeps one Ray up for all of them with :func:`session`.

Tasks retry when their worker process dies (Ray's ``max_retries``); an exception raised by the
function itself is not retried and reaches the caller. At most ``window`` tasks are in flight and
results are handed back strictly in item order, so memory holds a bounded number of results
whatever the number of items. The caller writes its outputs under temporary names and renames them
when the iteration completes, so an interrupted run (Ctrl-C) leaves no partial output.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MAX_RETRIES = 3
"""Times a task is re-run after its worker process died."""


@dataclass(frozen=True)
class Workers:
    """Where tasks run.

    Attributes:
        count: parallel workers; 1 without ``address`` runs in-process without Ray.
        address: a Ray cluster's ``HOST:PORT`` to join, or None for a local Ray started by the command.
    """

    count: int
    address: str | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"--workers: expected >= 1, got {self.count}")

    @property
    def in_process(self) -> bool:
        return self.count == 1 and not self.address

    def at_most(self, tasks: int) -> Workers:
        """No more local workers than ``tasks`` (a single task runs in-process); a cluster is kept."""
        return self if self.address else Workers(max(1, min(self.count, tasks)))


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """``--workers`` and ``--address``; read them back with :func:`workers_from_args`. ``default``: the
    workers without ``--workers`` (None: one per core)."""
    shown = "one per core" if default is None else str(default)
    parser.add_argument(
        "--workers",
        type=int,
        default=default,
        help=f"parallel Ray workers (default: {shown}); 1 runs in this process without Ray",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="join the Ray cluster at HOST:PORT (default: $RAY_ADDRESS, else a local Ray started and stopped here)",
    )


def workers_from_args(args: argparse.Namespace) -> Workers:
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    count = args.workers if args.workers is not None else default_workers()
    return Workers(count, address)


def map_ordered(
    fn: Callable,
    items: Iterable,
    workers: Workers,
    *,
    total: int | None = None,
    desc: str = "tasks",
    progress: bool = True,
    window: int | None = None,
    on_result: Callable[[object, object], None] | None = None,
) -> Iterator:
    """Yield ``fn(item)`` for every item, in item order, running the calls on ``workers``.

    ``fn`` must be importable by the workers (a module-level function of an installed package) and its
    items and results picklable. ``window`` bounds the tasks in flight (default twice the workers).
    A tqdm bar counts finished tasks; ``on_result(bar, result)`` may set its postfix.
    """
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="task", disable=not progress) as bar:
        if workers.in_process:
            results = (fn(item) for item in items)
            for result in results:
                bar.update(1)
                if on_result is not None:
                    on_result(bar, result)
                yield result
            return
        yield from _ray_map(fn, items, workers, window, bar, on_result)


@contextlib.contextmanager
def session(workers: Workers) -> Iterator[None]:
    """Keep Ray up for the block, for a command that fans out more than once (e.g. every RL step): a
    local Ray with ``workers.count`` CPUs is started, or the cluster at ``workers.address`` joined, on
    entry and left on exit (also on an error or Ctrl-C). Nothing happens in-process or when Ray is
    already initialised (the caller's session is kept)."""
    if workers.in_process:
        yield
        return
    import ray

    if ray.is_initialized():
        yield
        return
    if workers.address:
        try:
            ray.init(address=workers.address, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise ConnectionError(
                f"--address {workers.address}: could not join the Ray cluster ({e}); a cluster started by "
                "`ray start` checks a token: run with RAY_AUTH_MODE=token and the cluster's token in "
                "~/.ray/auth_token (docs/scale-out.md)"
            ) from None
    else:
        ray.init(
            address="local",
            num_cpus=workers.count,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        yield
    finally:
        ray.shutdown()


def _ray_map(fn, items, workers: Workers, window, bar, on_result) -> Iterator:
    import ray

    with session(workers):
        if window is None:
            slots = workers.count if not workers.address else int(ray.cluster_resources().get("CPU", workers.count))
            window = 2 * max(1, slots)
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(fn)
        todo = iter(items)
        pending: deque = deque()
        finished: set = set()

        def submit() -> None:
            for item in todo:
                pending.append(remote.remote(item))
                return

        for _ in range(window):
            submit()
        while pending:
            running = [ref for ref in pending if ref not in finished]
            if pending[0] not in finished:
                ready, _ = ray.wait(running, num_returns=1)
                finished.update(ready)
                bar.update(len(ready))
                continue
            ref = pending.popleft()
            finished.discard(ref)
            result = ray.get(ref)
            del ref
            submit()
            if on_result is not None:
                on_result(bar, result)
            yield result


__all__ = ["MAX_RETRIES", "Workers", "add_arguments", "default_workers", "map_ordered", "session", "workers_from_args"]
