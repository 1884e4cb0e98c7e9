"""``wamdiff eval``: open-loop evaluation of a checkpoint (per reasoning mode) and of reference planners
over bags, one JSON with every run and a table on the terminal.

Runs, all through :func:`wamdiff_ros.evaluation.evaluate_open_loop` on the same frames:

- ``--model DIR --mode fast,slow,adaptive``: the model once per mode (a family with a fast/slow gate,
  forced or adaptive; the label is ``<family>/<mode>``), or once as ``<family>`` for a family with one path;
- ``--baseline constant_velocity``: :class:`~wamdiff_ros.planners.constant_velocity.ConstantVelocityPlanner`,
  the ego's current twist (speed and yaw rate: an arc) held over the horizon;
- ``--baseline navsim_constant_velocity``: the same planner as NAVSIM's ConstantVelocityAgent (straight
  along the heading at the current speed), the constant-velocity row of NAVSIM's tables;
- ``--baseline expert``: the expert's logged future itself (:class:`LoggedPlanner`), the "human" row of
  NAVSIM tables (its EP is < 1 where the PDM-Closed reference progresses further).

Printed: PDMS / EPDMS with NAVSIM sub-metrics, L2 at 1/2/3 s, ADE / FDE, collision rates, latency,
fast / slow rates overall and per scenario, MoE load per layer (CV², 0 = balanced) and router entropy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from wamdiff_ros.data.remap import add_remap_argument, parse_remaps
from wamdiff_ros.training.settings import passive_omp
from wamdiff_ros.types import Observation, PlanResult, Trajectory

BASELINES = ("constant_velocity", "navsim_constant_velocity", "expert")
METRIC_COLUMNS = ("PDMS", "EPDMS", "NC", "DAC", "DDC", "TLC", "EP", "TTC", "LK", "HC", "EC")
OPEN_LOOP_COLUMNS = ("l2_1s", "l2_2s", "l2_3s", "ade", "fde", "collision_rate_3s", "at_fault_collision_rate")


class LoggedPlanner:
    """Plans the logged future of the dataset frame that an observation came from (the expert's plan).

    Frames are matched by stamp and ego position, so it works whatever order the frames come in.
    """

    family = "expert_log"
    history = 0

    def __init__(self, dataset):
        self.rig = dataset.rig
        self.spec = dataset.spec
        self._futures: dict[tuple, tuple[int, int]] = {}
        for b, k in dataset.index:
            f = dataset.bags[b].log.frames[k]
            self._futures[self._key(f.stamp_ns, f.ego.pose)] = (b, k)
        self._dataset = dataset

    @staticmethod
    def _key(stamp_ns: int, pose) -> tuple:
        return (int(stamp_ns), round(float(pose[0]), 3), round(float(pose[1]), 3))

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        key = self._key(obs.stamp_ns, obs.ego.pose)
        if key not in self._futures:
            raise ValueError(f"LoggedPlanner: observation at stamp {obs.stamp_ns} ns is not a frame of its dataset")
        b, k = self._futures[key]
        future = self._dataset.bags[b].target(k, self.spec)[0]
        poses = np.asarray(future, np.float64).copy()
        return PlanResult(
            trajectory=Trajectory(poses, self.spec, "base_link", obs.stamp_ns),
            candidates=poses[None],
            candidate_scores=np.ones(1),
            mode="fast",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint folder (absolute, or under models/)")
    parser.add_argument("--data", nargs="+", required=True, metavar="BAG", help="bags to evaluate on (one dataset)")
    parser.add_argument("--json", required=True, metavar="OUT", help="write every run's results here")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument(
        "--mode", default="adaptive", help="reasoning mode(s) of the model, comma-separated: fast,slow,adaptive"
    )
    parser.add_argument(
        "--baseline", nargs="*", default=[], choices=BASELINES, help="also evaluate these reference planners"
    )
    parser.add_argument("--budget-ms", type=float, default=None, help="latency budget given to the planner")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--frames", action="store_true", help="keep per-frame rows in the JSON")
    parser.add_argument(
        "--calibrate-gate",
        type=float,
        metavar="MAX_SLOW_RATE",
        help="with --mode fast,slow: fit the gate's theta / c_min for the best adaptive PDMS at a slow rate "
        "<= MAX_SLOW_RATE (fit on validation data, report on test data)",
    )
    parser.add_argument("--no-cache", action="store_true", help="decode images on every access (no dataset cache)")
    add_remap_argument(parser)


def run_all(planners: dict, dataset, every: int = 1, max_frames=None, budget_ms=None, keep_frames=False) -> dict:
    """Evaluate each ``label -> planner`` on ``dataset``: ``(results, frames)`` with ``results[label] =
    {aggregate[, frames]}`` (the aggregate holds per-scenario PDMS / EPDMS and slow-mode rates under
    ``by_scenario``; per-frame rows only with ``keep_frames``) and ``frames[label]`` the per-frame rows
    (with the gate's inputs ``p_complex`` / ``fast_confidence`` where the planner reports them)."""
    from wamdiff_ros.evaluation import evaluate_open_loop

    results = {}
    for label, planner in planners.items():
        print(f"wamdiff eval: {label}", file=sys.stderr)
        res = evaluate_open_loop(
            planner, dataset, every, budget_ms=budget_ms, max_frames=max_frames, on_frame=_gate_inputs, progress=True
        )
        results[label] = {"aggregate": res["aggregate"], "frames": res["frames"]}
    if not keep_frames:
        frames = {label: r.pop("frames") for label, r in results.items()}
        return results, frames
    return results, {label: r["frames"] for label, r in results.items()}


def _gate_inputs(rec) -> None:
    """Keep the gate's inputs (complexity probability, fast-pass confidence) in each frame's row."""
    for key in ("p_complex", "fast_confidence"):
        if key in rec.result.info:
            rec.row[key] = float(rec.result.info[key])


def print_report(results: dict, file=None) -> None:
    """Tables of the runs: scores, open loop, modes and latency, per scenario, MoE."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=200)
    t = Table(title="open-loop scores (NAVSIM sub-metrics, means over frames)")
    t.add_column("run")
    for c in METRIC_COLUMNS + OPEN_LOOP_COLUMNS + ("slow", "p50 ms", "p99 ms"):
        t.add_column(
            c.replace("collision_rate_3s", "col3s").replace("at_fault_collision_rate", "NC=0"), justify="right"
        )
    for label, r in results.items():
        a = r["aggregate"]
        cells = [f"{a[c]:.3f}" for c in METRIC_COLUMNS] + [f"{a[c]:.3f}" if c in a else "-" for c in OPEN_LOOP_COLUMNS]
        cells += [f"{a['slow_rate']:.2f}", f"{a['latency_ms']['p50']:.1f}", f"{a['latency_ms']['p99']:.1f}"]
        t.add_row(label, *cells)
    console.print(t)
    scenarios = sorted({s for r in results.values() for s in r["aggregate"]["by_scenario"]})
    s = Table(title="per scenario: PDMS (slow-mode rate)")
    s.add_column("scenario")
    s.add_column("frames", justify="right")
    for label in results:
        s.add_column(label, justify="right")
    for name in scenarios:
        cells = []
        frames = 0
        for r in results.values():
            v = r["aggregate"]["by_scenario"].get(name)
            frames = v["frames"] if v else frames
            cells.append(f"{v['PDMS']:.3f} ({v['slow_rate']:.2f})" if v else "-")
        s.add_row(name, str(frames), *cells)
    console.print(s)
    for label, r in results.items():
        moe = r["aggregate"].get("moe")
        if not moe:
            continue
        m = Table(title=f"{label}: MoE expert load per layer (share of assignments), CV², router entropy")
        m.add_column("layer")
        m.add_column("load")
        m.add_column("CV²", justify="right")
        for i, (load, cv2) in enumerate(zip(moe["load_mean"], moe["load_cv2"], strict=False)):
            m.add_row(str(i), " ".join(f"{x:.2f}" for x in load), f"{cv2:.3f}")
        console.print(m)
        if "entropy_mean" in moe:
            console.print(f"  mean router entropy {moe['entropy_mean']:.3f} nats")


def main(args: argparse.Namespace) -> int:
    passive_omp()
    import torch

    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.data.dataset import DrivingDataset, default_cache_dir
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.paths import resolve
    from wamdiff_ros.planners.base import load_planner
    from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
    from wamdiff_ros.training.gate_calibration import calibrate_gate
    from wamdiff_ros.training.supervised import data_summary

    torch.set_num_threads(max(1, args.threads))
    if args.model is None and not args.baseline:
        print("wamdiff eval: give --model DIR and/or --baseline constant_velocity expert", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("fast", "slow", "adaptive")]
    if bad or not modes:
        print(f"wamdiff eval: --mode: expected fast, slow and/or adaptive, got {args.mode!r}", file=sys.stderr)
        return 2
    try:
        model = planner = None
        if args.model is not None:
            model = resolve(args.model, "models")
            planner = load_planner(model)
        dataset = DrivingDataset(
            args.data,
            spec=planner.spec if planner is not None else None,
            history=planner.history if planner is not None else 0,
            cache_dir=None if args.no_cache else default_cache_dir(),
            rig=planner.rig if planner is not None else None,
            scenes=False,
            remaps=parse_remaps(args.remap),
        )
        planners: dict = {}
        if planner is not None:
            if planner.modes:
                for mode in modes:
                    planners[f"{planner.family}/{mode}"] = _ModeView(planner, mode)
            else:
                planners[planner.family] = planner
        if "constant_velocity" in args.baseline:
            planners["constant_velocity"] = ConstantVelocityPlanner(dataset.rig, dataset.spec)
        if "navsim_constant_velocity" in args.baseline:
            straight = ConstantVelocityPlanner(dataset.rig, dataset.spec, use_yaw_rate=False)
            planners["navsim_constant_velocity"] = straight
        if "expert" in args.baseline:
            planners["expert_log"] = LoggedPlanner(dataset)
        if args.calibrate_gate is not None and not {"fast", "slow"} <= set(modes):
            raise ValueError("--calibrate-gate needs --mode with both fast and slow")
        results, frames = run_all(planners, dataset, args.every, args.max_frames, args.budget_ms, args.frames)
        calibration = None
        if args.calibrate_gate is not None:
            if planner is None or not {"fast", "slow"} <= set(planner.modes):
                raise ValueError("--calibrate-gate needs --model of a family with fast and slow modes")
            family = planner.family
            calibration = calibrate_gate(frames[f"{family}/fast"], frames[f"{family}/slow"], args.calibrate_gate)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"wamdiff eval: {e}", file=sys.stderr)
        return 2
    report = {
        "model": str(model) if model else None,
        "data": data_summary(dataset),
        "every": args.every,
        "max_frames": args.max_frames,
        "budget_ms": args.budget_ms,
        "spec": dataset.spec.to_dict(),
        "results": results,
    }
    if planner is not None:
        report["planner"] = planner.describe()
    if calibration is not None:
        report["gate_calibration"] = calibration
    atomic_write_json(Path(args.json), report)
    print_report(results)
    if calibration is not None:
        print(f"gate calibration: {calibration}")
    print(f"wamdiff eval: wrote {args.json}", file=sys.stderr)
    return 0


class _ModeView:
    """The same planner object with its reasoning mode set for the duration of each ``plan`` call."""

    def __init__(self, planner, mode: str):
        self._planner = planner
        self.mode = mode
        self.family = planner.family
        self.rig = planner.rig
        self.spec = planner.spec

    def plan(self, obs: Observation, budget_ms: float | None = None) -> PlanResult:
        self._planner.set_mode(self.mode)
        return self._planner.plan(obs, budget_ms)


__all__ = ["BASELINES", "LoggedPlanner", "print_report", "run_all"]
