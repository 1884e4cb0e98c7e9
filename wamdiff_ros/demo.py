"""``wamdiff demo``: the closed loop end to end, through real ROS topics, in a few minutes.

Starts the ``sim_closed_loop`` graph (sim_bridge_node + planner_node on sim time, as ``wamdiff launch``
does) with scenarios round-robin over the test split (``--split closedloop``: the fresh seeds of
``wamdiff closedloop``), records the topics of the episode video into a
bag and watches the planner (:mod:`wamdiff_ros.ros.demo_monitor`), then prints a summary table and
writes into ``--out``:

- ``metrics.json``: per-episode closed-loop metrics, the summary, planner latency and fast/slow counts;
- ``episode.gif``: one episode, the camera views above a BEV with the plan and its candidates;
- ``demo/`` (rosbag2 MCAP, ``demo/demo.mcap``): what was recorded, replayable with ``wamdiff play``;
- ``episodes.json`` (the bridge's own metrics file) and ``graph.log`` (the nodes' output).

Every process it starts is stopped on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from wamdiff_ros.sim.scenarios import DEMO_SCENARIOS

DEFAULT_MODEL = "wamdiff_small"
DEFAULT_SCENARIOS = list(DEMO_SCENARIOS)
DEFAULT_EPISODES = 6
DEFAULT_MAX_DURATION_S = 20.0
GRAPH = "sim_closed_loop"
PLANNER, BRIDGE = "planner_node", "sim_bridge_node"
RIG = "rigs/default.yaml"
TABLE_WIDTH = 120
PLANNER_START_TIMEOUT_S = 120.0
"""Wall time the planner may take to load its model and start publishing trajectories."""
DIAGNOSTICS_WAIT_S = 3.0
"""After the last episode: wait this long for the planner's final /diagnostics (1 s period by default)."""
TRAIN_HINT = (
    "train it with `wamdiff collect --split train --episodes 60 --out data/train.mcap` and "
    "`wamdiff train --data data/train.mcap --out runs/wamdiff_small`, then copy runs/wamdiff_small/best/ "
    "to models/wamdiff_small/ (or pass --model DIR with any checkpoint folder)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"checkpoint folder or name under models/ ({DEFAULT_MODEL})"
    )
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help=f"episodes (default {DEFAULT_EPISODES})")
    parser.add_argument(
        "--scenarios", nargs="+", default=DEFAULT_SCENARIOS, help="scenario names, run round-robin (default: six types)"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "closedloop"),
        help="seed range of the episodes: test (default, the recorded test bags' episodes) or closedloop "
        "(the fresh seeds of wamdiff closedloop)",
    )
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help=f"cut each episode at S s of sim time (default {DEFAULT_MAX_DURATION_S:g})",
    )
    parser.add_argument("--gif-episode", type=int, default=0, metavar="I", help="episode index of the GIF (default 0)")
    parser.add_argument("--fps", type=float, default=10.0, help="GIF frame rate (default 10: real time at 0.1 s ticks)")
    parser.add_argument(
        "--timeout", type=float, default=1200.0, metavar="S", help="stop the demo after S s of wall time (default 1200)"
    )


def check_model(name: str | os.PathLike) -> Path:
    """The checkpoint folder ``name`` (as given or under ``models/``); ValueError naming what is missing."""
    from wamdiff_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_config
    from wamdiff_ros.paths import resolve

    try:
        folder = resolve(name, "models").resolve()
    except FileNotFoundError:
        raise ValueError(
            f"model {str(name)!r} not found (looked for it as given and under models/); {TRAIN_HINT}"
        ) from None
    if not (folder / CONFIG_FILE).is_file():
        raise ValueError(f"model {str(name)!r}: {folder} has no {CONFIG_FILE}, so it is not a checkpoint; {TRAIN_HINT}")
    doc = read_config(folder)
    if "weights_sha256" in doc and not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(f"model {str(name)!r}: {folder} has no {WEIGHTS_FILE} (training not finished?); {TRAIN_HINT}")
    return folder


def graph_arguments(
    model: Path, scenarios: list[str], episodes: int, max_duration: float, out: Path, split: str = "test"
) -> dict[str, str]:
    """The ``sim_closed_loop`` launch arguments of a demo run."""
    return {
        "model_path": str(model),
        "scenarios": "[" + ", ".join(scenarios) + "]",
        "split": split,
        "episodes": str(episodes),
        "max_duration_s": repr(float(max_duration)),
        "metrics_path": str(out / "episodes.json"),
        "publish_markers": "true",
    }


def summarize(episodes: list[dict], processing_ms: list[float], diagnostics: dict[str, str]) -> dict:
    """The demo's summary row: closed-loop metrics over ``episodes`` (the bridge's records), planner cycle
    latency from ``processing_ms`` and fast/slow/fallback rates from the planner's last diagnostics."""
    n = len(episodes)
    lat = np.asarray(processing_ms, np.float64)
    pdms = np.array([e.get("mean_pdms", math.nan) for e in episodes], np.float64)
    plans = int(diagnostics.get("plans", 0))
    fast, slow = int(diagnostics.get("fast", 0)), int(diagnostics.get("slow", 0))
    fallbacks = int(diagnostics.get("fallbacks_hold", 0)) + int(diagnostics.get("fallbacks_stop", 0))
    cycles = plans + fallbacks
    return {
        "episodes": n,
        "collisions": sum(bool(e["collision"]) for e in episodes),
        "at_fault_collisions": sum(bool(e["at_fault_collision"]) for e in episodes),
        "route_completion": float(np.mean([e["route_completion"] for e in episodes])) if n else math.nan,
        "mean_pdms": float(np.nanmean(pdms)) if np.isfinite(pdms).any() else math.nan,
        "driving_score": float(np.mean([e.get("driving_score", math.nan) for e in episodes])) if n else math.nan,
        "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else math.nan,
        "planner_cycles": int(lat.size),
        "plans": plans,
        "fast_rate": fast / plans if plans else math.nan,
        "slow_rate": slow / plans if plans else math.nan,
        "fallback_rate": fallbacks / cycles if cycles else math.nan,
        "trajectory_timeouts": sum(int(e.get("trajectory_timeouts", 0)) for e in episodes),
        "moe_load": diagnostics.get("moe_load", ""),
    }


def table_rows(episodes: list[dict], summary: dict) -> tuple[list[dict], list[dict]]:
    """``(per-episode rows, summary rows (metric, value))`` for :func:`wamdiff_ros.bench.report.print_table`."""
    rows = [
        {
            "episode": e["episode"],
            "end": e["reason"],
            "at-fault": "yes" if e["at_fault_collision"] else ("not at fault" if e["collision"] else "no"),
            "completion": e["route_completion"],
            "PDMS": e.get("mean_pdms", math.nan),
            "DS": e.get("driving_score", math.nan),
            "ticks": e.get("ticks", ""),
            "timeouts": e.get("trajectory_timeouts", 0),
        }
        for e in episodes
    ]
    s = summary
    total = [
        ("episodes", s["episodes"]),
        ("at-fault collisions", f"{s['at_fault_collisions']} (all collisions {s['collisions']})"),
        ("route completion", s["route_completion"]),
        ("mean score (closed-loop PDMS)", s["mean_pdms"]),
        ("driving score (CARLA leaderboard, %)", s["driving_score"]),
        ("planner latency p50 (ms)", s["latency_ms_p50"]),
        ("planner latency p99 (ms)", s["latency_ms_p99"]),
        ("fast / slow rate", f"{s['fast_rate']:.3f} / {s['slow_rate']:.3f} of {s['plans']} plans"),
        ("fallback rate", s["fallback_rate"]),
        ("trajectory timeouts (bridge)", s["trajectory_timeouts"]),
    ]
    return rows, [{"metric": k, "value": v} for k, v in total]


def _episode_line(record: dict, total: int) -> str:
    collision = f"collision ({'at fault' if record['at_fault_collision'] else 'not at fault'})"
    end = collision if record["collision"] else record["reason"]
    return (
        f"wamdiff demo: episode {record.get('index', '?')}/{total} {record['episode']}: {end}, "
        f"completion {record['route_completion']:.2f}, PDMS {record.get('mean_pdms', math.nan):.3f}"
    )


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class DemoError(RuntimeError):
    """The demo could not finish; the message says why."""


def run_graph(args, model: Path, out: Path, cameras: list[str], topics) -> tuple[dict, list[dict], Path | None]:
    """Run the graph with the monitor until the bridge is done; returns (monitor data, episode records, bag).

    The planner starts first; the bridge starts once the monitor is matched to the planner's outputs, and
    (``wait_for_subscribers`` 2) begins once the monitor is matched to its sensors, so the recording
    holds the first tick. Raises DemoError (graph failure, timeout) or KeyboardInterrupt (SIGINT /
    SIGTERM); every process started is stopped before it returns or raises."""
    from wamdiff_ros.graphs import load_graph, node_commands
    from wamdiff_ros.launcher import GraphProcesses
    from wamdiff_ros.ros.demo_monitor import DemoMonitor

    graph = load_graph(GRAPH)
    arguments = graph_arguments(model, args.scenarios, args.episodes, args.max_duration, out, args.split)
    commands = node_commands(graph, {**arguments, "wait_for_subscribers": "2"})
    stop_signal: list[int] = []
    counter = iter(range(1, args.episodes + 1))

    def on_signal(signum, _frame):
        stop_signal.append(signum)

    def on_episode(record):
        print(_episode_line({**record, "index": next(counter, "?")}, args.episodes), flush=True)

    log_path = out / "graph.log"
    started = time.monotonic()

    def check(procs: dict) -> None:
        if stop_signal:
            raise KeyboardInterrupt
        for name, proc in procs.items():
            rc = proc.poll()
            if rc is not None and (rc != 0 or name != BRIDGE):
                raise DemoError(f"{name} exited with {rc}; {log_path}:\n{_log_tail(log_path)}")
        if time.monotonic() - started > args.timeout:
            raise DemoError(f"the episodes did not finish within --timeout {args.timeout:g} s")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    monitor, bag, groups = None, None, []
    try:
        monitor = DemoMonitor(topics.types(cameras), out / "demo.mcap", (topics.map,), on_episode=on_episode).start()
        with open(log_path, "w") as log:

            def start(names: set[str]) -> dict:
                groups.append(
                    GraphProcesses([c for c in commands if c[0].name in names], stdout=log, stderr=subprocess.STDOUT)
                )
                return {node.name: proc for node, proc in groups[-1].procs}

            procs = start({PLANNER})
            outputs = [topics.trajectory, topics.candidates, monitor.processing_topic]
            while not monitor.matched(outputs):
                check(procs)
                if time.monotonic() - started > PLANNER_START_TIMEOUT_S:
                    raise DemoError(
                        f"{PLANNER} did not start planning within {PLANNER_START_TIMEOUT_S:g} s "
                        f"(model {model}); {log_path}:\n{_log_tail(log_path)}"
                    )
                time.sleep(0.1)
            procs.update(start({n.name for n in graph.nodes} - {PLANNER}))
            while procs[BRIDGE].poll() is None:
                check(procs)
                time.sleep(0.1)
            check(procs)
            monitor.wait_diagnostics(time.monotonic(), DIAGNOSTICS_WAIT_S)  # plan counts up to the last tick
    finally:
        for group in reversed(groups):
            group.stop()
        if monitor is not None:
            bag = monitor.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    episodes = _read_episodes(out / "episodes.json", monitor.episodes)
    data = {"processing_ms": list(monitor.processing_ms), "diagnostics": dict(monitor.diagnostics)}
    return data, episodes, bag


def _read_episodes(path: Path, live: list[dict]) -> list[dict]:
    """The bridge's metrics file (complete and written atomically), else the records seen on the topic."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads(path.read_text())["episodes"]
    return list(live)


def main(args: argparse.Namespace) -> int:
    """``wamdiff demo``."""
    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.bench.report import print_table, summarize_ms
    from wamdiff_ros.config import ConfigError
    from wamdiff_ros.reporting.episode_video import VideoTopics, episode_gif
    from wamdiff_ros.rig import load_rig
    from wamdiff_ros.sim.scenarios import load_scenarios

    wall0 = time.monotonic()
    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes: expected >= 1, got {args.episodes}")
        if not args.max_duration > 0:
            raise ValueError(f"--max-duration: expected > 0 s, got {args.max_duration}")
        if not 0 <= args.gif_episode < args.episodes:
            raise ValueError(f"--gif-episode: expected 0..{args.episodes - 1}, got {args.gif_episode}")
        load_scenarios(args.scenarios)
        model = check_model(args.model)
        cameras = [c.name for c in sorted(load_rig(RIG).cameras, key=lambda c: -c.rpy[2])]  # left to right
    except (ValueError, ConfigError, FileNotFoundError) as e:
        print(f"wamdiff demo: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "episodes.json", "episode.gif"):
        (out / stale).unlink(missing_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the demo talks to its own processes
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    topics = VideoTopics()
    print(
        f"wamdiff demo: {args.episodes} episode(s) of at most {args.max_duration:g} s over "
        f"{', '.join(args.scenarios)} ({args.split} split), model {model}; node output in {out / 'graph.log'}",
        flush=True,
    )
    try:
        data, episodes, bag = run_graph(args, model, out, list(cameras), topics)
    except KeyboardInterrupt:
        print("wamdiff demo: interrupted; every node stopped", file=sys.stderr)
        return 130
    except DemoError as e:
        print(f"wamdiff demo: {e}", file=sys.stderr)
        return 1
    if not episodes:
        print("wamdiff demo: no episode finished", file=sys.stderr)
        return 1
    summary = summarize(episodes, data["processing_ms"], data["diagnostics"])
    gif_path, gif = out / "episode.gif", {}
    if bag is not None and args.gif_episode < len(episodes):
        e = episodes[args.gif_episode]
        start, end = e["start_time"], e["start_time"] + e["duration"] + 0.05
        caption = f"{e['scenario']} seed {e['seed']}"
        try:
            frames, fps = episode_gif(bag, gif_path, list(cameras), start, end, topics, caption, args.fps)
            gif = {"path": str(gif_path), "episode": e["episode"], "frames": frames, "fps": fps}
            gif["bytes"] = gif_path.stat().st_size
        except ValueError as err:
            print(f"wamdiff demo: no GIF: {err}", file=sys.stderr)
    wall_s = time.monotonic() - wall0
    result = {
        "model": str(model),
        "scenarios": list(args.scenarios),
        "split": args.split,
        "max_duration_s": args.max_duration,
        "summary": summary,
        "episodes": episodes,
        "planner": {
            "processing_ms": summarize_ms(data["processing_ms"]) if data["processing_ms"] else {},
            "diagnostics": data["diagnostics"],
        },
        "bag": str(bag) if bag is not None else None,
        "gif": gif,
        "wall_s": wall_s,
    }
    atomic_write_json(out / "metrics.json", result)
    rows, total = table_rows(episodes, summary)
    print_table("wamdiff demo: episodes", rows, width=TABLE_WIDTH)
    print_table(f"wamdiff demo: summary ({Path(model).name})", total, width=TABLE_WIDTH)
    print(f"wamdiff demo: wrote {out / 'metrics.json'}", end="")
    print(f", {gif_path} ({gif['frames']} frames, {gif['bytes'] / 1e6:.1f} MB)" if gif else "", end="")
    print(f", bag {bag}; {wall_s:.0f} s" if bag else f"; {wall_s:.0f} s")
    return 0 if gif else 1
