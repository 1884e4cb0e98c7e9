"""``wamdiff launch GRAPH [name:=value ...]``: start a node graph from config/graphs/ as processes.

The same YAML as ``launch/<graph>.launch.py`` (see :mod:`wamdiff_ros.graphs`), for machines where
launch_ros is not installable. Each node runs as its own process (its own session, so a terminal's
Ctrl-C reaches only the launcher), started with ``--ros-args --params-file … -p … -r …``. Ctrl-C (or
SIGTERM) stops the graph cleanly: SIGINT to every node, then SIGTERM, then SIGKILL for any that hang.
When a ``required`` node exits, the rest of the graph is stopped and its exit code is returned.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import time

STOP_GRACE_S = 10.0
"""How long nodes get to exit after SIGINT before SIGTERM (and as long again before SIGKILL)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", help="graph name (config/graphs/<graph>.yaml) or a path to a graph YAML")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments of the graph")
    parser.add_argument("--print", action="store_true", help="print the node commands and exit")


def parse_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"launch argument {item!r}: expected name:=value")
        out[name] = value
    return out


class GraphProcesses:
    """The running processes of a graph."""

    def __init__(self, commands, env=None, stdout=None, stderr=None):
        self.procs: list[tuple[object, subprocess.Popen]] = []
        try:
            for node, argv in commands:
                proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
                self.procs.append((node, proc))
        except BaseException:
            self.stop()
            raise

    def poll(self) -> tuple[object, int] | None:
        """``(node, returncode)`` of an exited required node, or of the last node if all exited; else None."""
        alive = 0
        for node, proc in self.procs:
            rc = proc.poll()
            if rc is None:
                alive += 1
            elif node.required:
                return node, rc
        if alive == 0 and self.procs:
            node, proc = self.procs[-1]
            return node, proc.returncode
        return None

    def stop(self, grace: float = STOP_GRACE_S) -> dict[str, int]:
        """SIGINT every live node, then SIGTERM, then SIGKILL; returns node name -> exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            live = [p for _, p in self.procs if p.poll() is None]
            if not live:
                break
            for p in live:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(sig)
            deadline = time.monotonic() + (grace if sig != signal.SIGKILL else 5.0)
            while time.monotonic() < deadline and any(p.poll() is None for p in live):
                time.sleep(0.05)
        return {node.name: p.wait() for node, p in self.procs}


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.graphs import load_graph, node_commands

    try:
        graph = load_graph(args.graph)
        commands = node_commands(graph, parse_overrides(args.arguments))
    except (ConfigError, ValueError) as e:
        print(f"wamdiff launch: {e}", file=sys.stderr)
        return 2
    if args.print:
        for node, argv in commands:
            print(f"# {node.name}{' (required)' if node.required else ''}\n{shlex.join(argv)}")
        return 0
    stop_requested = []

    def request_stop(signum, _frame):
        stop_requested.append(signum)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs = GraphProcesses(commands)
        print(f"wamdiff launch: {graph.name}: started {', '.join(n.name for n, _ in procs.procs)}", file=sys.stderr)
        ended = None
        while not stop_requested and ended is None:
            ended = procs.poll()
            time.sleep(0.1)
        codes = procs.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    summary = ", ".join(f"{k} {v}" for k, v in codes.items())
    if stop_requested:
        print(f"wamdiff launch: stopped on signal ({summary})", file=sys.stderr)
        return 0 if all(c in (0, -signal.SIGINT) for c in codes.values()) else 1
    node, rc = ended
    print(f"wamdiff launch: {node.name} exited with {rc}; graph stopped ({summary})", file=sys.stderr)
    return int(rc) if rc >= 0 else 128 - rc
