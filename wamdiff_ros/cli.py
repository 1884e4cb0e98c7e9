"""The ``wamdiff`` command: one entry point for setup checks, data, training, evaluation,
benchmarks, export and running graphs.

Each subcommand lives in the module that owns the job; the module exposes
``add_arguments(parser)`` and ``main(args) -> int`` and keeps heavy imports (torch, rclpy) inside
``main`` so ``wamdiff --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("wamdiff_ros.doctor", "report what this machine has (ROS 2, torch, GPU, backends, simulators)"),
    "launch": ("wamdiff_ros.launcher", "start a node graph from config/graphs/ as processes (Ctrl-C stops it)"),
    "demo": ("wamdiff_ros.demo", "closed-loop demo: sim bridge + planner over ROS topics, summary table, metrics, GIF"),
    "collect": ("wamdiff_ros.data.collect", "record expert episodes of the embedded world as an MCAP bag"),
    "expert-eval": ("wamdiff_ros.sim.episode", "closed-loop expert driver over a scenario seed split"),
    "export": ("wamdiff_ros.planners.export", "ONNX graphs (static shapes, metadata) and cached TensorRT engines"),
    "play": ("wamdiff_ros.ros.bag_player", "publish a bag's messages through rclpy with their recorded timing"),
    "record": ("wamdiff_ros.ros.bag_recorder", "record live topics into a rosbag2 MCAP bag (Ctrl-C finishes it)"),
    "replay": (
        "wamdiff_ros.evaluation.replay_command",
        "open-loop evaluation of a planner over a bag: metrics JSON, summary, plots",
    ),
    "train": ("wamdiff_ros.training.supervised", "train a planner of any family on driving bags (resumable)"),
    "eval": (
        "wamdiff_ros.evaluation.eval_command",
        "open-loop PDMS/EPDMS, L2, MoE, fast/slow rates of a model or baseline",
    ),
    "closedloop": (
        "wamdiff_ros.evaluation.closed_loop_command",
        "closed-loop evaluation of a checkpoint in the embedded world on fresh seeds, against the expert",
    ),
    "compare": (
        "wamdiff_ros.evaluation.compare_command",
        "models and baselines side by side: open-loop PDMS/EPDMS, closed-loop figures, latency, size",
    ),
    "label": (
        "wamdiff_ros.planners.trajmoe.label_cli",
        "score a trajectory vocabulary against every frame of bags (TrajMoE labels; resumable)",
    ),
    "rl": ("wamdiff_ros.training.rl.cli", "RL fine-tuning (GSPO/GRPO) on replayed bags, scored by the NAVSIM scorer"),
}
"""Subcommand -> (module, one-line help). Modules register here as features land."""

BENCHES: dict[str, tuple[str, str]] = {
    "render": ("wamdiff_ros.bench.render", "multi-camera renderer: per-camera and total ms on a synthetic road"),
    "scorer": ("wamdiff_ros.bench.scorer", "NAVSIM scorer: ms to score 1/16/256/1024/4096 candidates, 20 agents"),
    "model": ("wamdiff_ros.bench.model", "a planner of any family: p50/p99 latency per backend and mode"),
    "node": (
        "wamdiff_ros.bench.node",
        "planner_node under a played bag at 10/20 Hz: end-to-end latency, jitter, CPU",
    ),
    "scaleout": (
        "wamdiff_ros.bench.scaleout",
        "wamdiff collect or label on 1 and on 2 Ray workers: wall times, speedup, byte-identical outputs",
    ),
}
"""``wamdiff bench <name>`` -> (module, one-line help)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wamdiff",
        description="End-to-end driving planners (WAM-Diff and friends) for ROS 2 vehicle computers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    if BENCHES:
        bp = sub.add_parser("bench", help="benchmarks: results printed as a table and written as JSON")
        bsub = bp.add_subparsers(dest="bench", metavar="BENCH", required=True)
        for name, (module, help_) in BENCHES.items():
            p = bsub.add_parser(name, help=help_, description=help_)
            p.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
            importlib.import_module(module).add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
