"""Closed-loop evaluation in the embedded world on fresh seeds (``wamdiff closedloop``, ``wamdiff compare``).

Episodes are ``(scenario, seed)`` pairs from each scenario's ``closedloop`` seed split, which no bag
(training, selection, test) holds, round-robin over the scenarios. Each episode is driven by every
:class:`DriverSpec` from the same start: a checkpoint or the constant-velocity baseline in process
through :class:`~wamdiff_ros.evaluation.loop_driver.LoopDriver` (the planner node's loop, the rig's
cameras rendered every tick), and the expert for reference. One drive is one task on the scale-out
engine (:mod:`wamdiff_ros.distributed.fanout`). A planner drive loads its checkpoint afresh, as the
node configures, so a drive never depends on the worker that ran it or on what ran before: the same
seeds and model give the same report but for the fields named in :data:`TIMING_KEYS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from wamdiff_ros.distributed import fanout
from wamdiff_ros.sim.episode import EpisodeMetrics, summarize
from wamdiff_ros.sim.scenarios import Scenario

SPLIT = "closedloop"
DRIVER_KINDS = ("expert", "model", "constant_velocity")
TIMING_KEYS = ("plan_ms", "step_ms", "planner_ms_p50", "planner_ms_p99", "latency_p50_ms", "run")
"""Report keys whose values are wall times (they differ between runs of the same episodes)."""


@dataclass(frozen=True)
class DriverSpec:
    """Who drives an episode (picklable: it travels to the workers).

    Attributes:
        label: the name in reports (unique within a run).
        kind: ``expert`` (the sim's expert on ground truth), ``model`` (the checkpoint of
            ``params['model_path']``) or ``constant_velocity`` (the baseline planner on ``params['rig_path']``).
        params: planner_node parameters (:func:`node_params`); unused by the expert.
        budget_ms: the reasoning budget given to the planner each cycle (None: no deadline, so that the
            fast/slow gate decides by the scene alone and a run is reproducible).
        image_format: how camera images reach the loop (``jpeg`` or ``raw``, see :mod:`.loop_driver`).
    """

    label: str
    kind: str
    params: dict = field(default_factory=dict)
    budget_ms: float | None = None
    image_format: str = "jpeg"

    def __post_init__(self):
        if self.kind not in DRIVER_KINDS:
            raise ValueError(f"DriverSpec.kind: expected one of {DRIVER_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class DriveJob:
    """One drive: ``driver`` through ``scenario`` (duration already capped) from ``seed``; the plans are
    scored every ``score_every`` ticks (0: not at all); ``trace`` keeps per-tick arrays."""

    scenario: Scenario
    seed: int
    driver: DriverSpec
    score_every: int = 5
    trace: bool = False


@dataclass
class Drive:
    """What one drive returns.

    Attributes:
        label: the driver's label.
        metrics: the episode's closed-loop figures.
        counts: planning cycles by outcome (``plans``, ``fast``, ``slow``, ``fallback_hold``,
            ``fallback_stop``); empty for the expert.
        fallback_reasons: fallback reason (up to its first colon) -> cycles.
        planner_ms: (N,) wall time of each plan call [ms].
        trace: per tick (with ``DriveJob.trace``): ``t`` [s], ``x``, ``y`` [m], ``yaw`` [rad], ``speed``
            [m/s], ``progress`` [m] along the route; planners also ``plan_end_x``, ``plan_end_y`` (the
            plan's last pose, map frame [m]), ``mode``, ``kind``, ``gate`` and ``reasons`` (strings).
    """

    label: str
    metrics: EpisodeMetrics
    counts: dict[str, int] = field(default_factory=dict)
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    planner_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trace: dict[str, np.ndarray] | None = None


# ---- who drives ---------------------------------------------------------------------------------


def node_params(**overrides) -> dict:
    """planner_node's parameters (config/planner.param.yaml, schema defaults filled) with ``overrides``."""
    from wamdiff_ros.config import load_params

    return {**load_params("planner.param.yaml"), **overrides}


def checkpoint_rig(folder, fallback_rig_path: str):
    """The rig recorded in a checkpoint's config.json (the one it was trained with), else the rig file."""
    from wamdiff_ros.models.checkpoint import read_config
    from wamdiff_ros.rig import Rig, load_rig

    recorded = read_config(folder)["config"].get("rig")
    return Rig.from_dict(recorded, f"checkpoint {folder}: config.json rig") if recorded else load_rig(fallback_rig_path)


def build_planner(spec: DriverSpec):
    """The planner of ``spec``, loaded, in its reasoning mode, warmed up and checked as the node does."""
    from wamdiff_ros.planning.model import load_checked_planner, prepare_planner, resolve_model

    p = spec.params
    if spec.kind == "model":
        folder = resolve_model(p["model_path"])
        rig = checkpoint_rig(folder, p["rig_path"])
        return load_checked_planner(p, rig)[0]
    if spec.kind == "constant_velocity":
        from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner
        from wamdiff_ros.rig import load_rig

        rig = load_rig(p["rig_path"])
        return prepare_planner(ConstantVelocityPlanner(rig), rig, p["reasoning_mode"], "constant_velocity")
    raise ValueError(f"build_planner: the {spec.kind!r} driver is not a planner")


def loop_config(spec: DriverSpec):
    """The planning loop's settings: the node's parameters, the budget of ``spec``."""
    from wamdiff_ros.planning.loop import LoopConfig

    return dataclasses.replace(LoopConfig.from_params(spec.params), budget_ms=spec.budget_ms)


# ---- one drive (a Ray task) ---------------------------------------------------------------------


def drive_episode(job: DriveJob) -> Drive:
    """Drive one episode with ``job.driver`` (a Ray task; see the module docstring)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from wamdiff_ros.evaluation.loop_driver import LoopDriver
    from wamdiff_ros.sim.episode import run_episode
    from wamdiff_ros.sim.expert import Expert
    from wamdiff_ros.sim.renderer import shared_renderer
    from wamdiff_ros.sim.world import World

    spec = job.driver
    world = World(job.scenario, job.seed)
    try:
        if spec.kind == "expert":
            result = run_episode(world, Expert(), score_every=job.score_every)
            driver = None
        else:
            planner = build_planner(spec)
            driver = LoopDriver(planner, loop_config(spec), spec.image_format)
            renderer = shared_renderer(planner.rig, world.lanes)
            result = run_episode(world, driver, renderer=renderer, spec=planner.spec, score_every=job.score_every)
    finally:
        world.close()
    drive = Drive(spec.label, result.metrics)
    if driver is not None:
        ticks = driver.ticks
        kinds = Counter(t.kind for t in ticks)
        modes = Counter(t.mode for t in ticks)
        drive.counts = {
            "plans": kinds["plan"],
            "fast": modes["fast"],
            "slow": modes["slow"],
            "fallback_hold": kinds["hold"],
            "fallback_stop": kinds["stop"],
        }
        drive.fallback_reasons = dict(Counter(r.split(":", 1)[0] for t in ticks for r in t.reasons))
        drive.planner_ms = np.array([t.planner_ms for t in ticks if t.planner_ms is not None], np.float64)
    if job.trace:
        drive.trace = _trace(result, driver)
    return drive


def _trace(result, driver) -> dict[str, np.ndarray]:
    from wamdiff_ros.geometry import compose

    frames = result.frames
    poses = np.array([f.ego.pose for f in frames]).reshape(-1, 3)
    out = {
        "t": np.array([f.stamp_ns for f in frames], np.int64) / 1e9,
        "x": poses[:, 0],
        "y": poses[:, 1],
        "yaw": poses[:, 2],
        "speed": np.array([f.ego.speed for f in frames]),
        "progress": np.array(result.progress),
    }
    if driver is not None:
        ends = np.array([compose(f.ego.pose, p[-1]) for f, p in zip(frames, result.plans)]).reshape(-1, 3)
        out["plan_end_x"], out["plan_end_y"] = ends[:, 0], ends[:, 1]
        ticks = driver.ticks
        out["mode"] = np.array([t.mode for t in ticks], dtype=str)
        out["kind"] = np.array([t.kind for t in ticks], dtype=str)
        out["gate"] = np.array([t.gate for t in ticks], dtype=str)
        out["reasons"] = np.array(["; ".join(t.reasons) for t in ticks], dtype=str)
    return out


# ---- many drives --------------------------------------------------------------------------------


def episodes(
    scenarios: Sequence[Scenario], count: int, max_duration: float = 0.0, split: str = SPLIT
) -> list[tuple[Scenario, int]]:
    """``count`` episodes round-robin over ``scenarios`` from their ``split`` seeds (default :data:`SPLIT`;
    ``val`` to tune a setting without touching the evaluation seeds), each scenario cut at
    ``max_duration`` s (0: its own duration); ValueError naming ``--episodes`` if ``count < 1``."""
    from wamdiff_ros.data.collect import plan_jobs

    capped = [s.with_duration_cap(max_duration) for s in scenarios]
    return plan_jobs(capped, split, count, 0)


def run_drivers(
    drivers: Sequence[DriverSpec],
    episode_list: Sequence[tuple[Scenario, int]],
    workers: fanout.Workers,
    *,
    score_every: int = 5,
    trace: bool = False,
    on_episode: Callable[[int, dict[str, Drive]], None] | None = None,
    desc: str = "closedloop",
) -> dict[str, list[Drive]]:
    """Every driver through every episode, one task per drive: ``label -> drives`` in episode order.

    ``on_episode(index, {label: drive})`` is called as each episode's drives are all back."""
    labels = [d.label for d in drivers]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run_drivers: driver labels must be unique, got {labels}")
    jobs = [DriveJob(s, seed, d, score_every, trace) for s, seed in episode_list for d in drivers]
    out: dict[str, list[Drive]] = {label: [] for label in labels}
    results = fanout.map_ordered(drive_episode, jobs, workers.at_most(len(jobs)), total=len(jobs), desc=desc)
    with contextlib.closing(results):
        for i, drive in enumerate(results):
            out[drive.label].append(drive)
            if on_episode is not None and (i + 1) % len(drivers) == 0:
                on_episode(i // len(drivers), {label: out[label][-1] for label in labels})
    return out


# ---- figures ------------------------------------------------------------------------------------


def _percentile(values: list[np.ndarray], q: float) -> float:
    pooled = np.concatenate(values) if values else np.zeros(0)
    return float(np.percentile(pooled, q)) if pooled.size else math.nan


def episode_record(drive: Drive, expert: Drive | None = None) -> dict:
    """One episode's row of the JSON report: the planner's metrics, its cycles, latency and the expert's
    figures on the same episode."""
    m = drive.metrics
    row = {
        **asdict(m),
        "timeout": m.reason == "timeout",
        "off_road": m.reason == "off_road",
        **drive.counts,
        "fallback_reasons": drive.fallback_reasons,
        "planner_ms_p50": _percentile([drive.planner_ms], 50),
        "planner_ms_p99": _percentile([drive.planner_ms], 99),
    }
    if expert is not None:
        row["expert"] = asdict(expert.metrics)
        row["speed_vs_expert"] = m.mean_speed / expert.metrics.mean_speed if expert.metrics.mean_speed > 0 else math.nan
    return row


def summarize_drives(drives: Sequence[Drive], experts: Sequence[Drive] | None = None) -> dict[str, dict]:
    """Per scenario and overall (``"all"``): :func:`~wamdiff_ros.sim.episode.summarize`'s figures plus
    collision and ending counts, collision kinds, mean speed, planner latency p50 / p99 [ms] over every
    plan, fast / slow / fallback rates over the cycles and, with ``experts`` (the same episodes in the
    same order), the expert's completion, collisions and mean speed, and the speed ratio."""
    if experts is not None and len(experts) != len(drives):
        raise ValueError(f"summarize_drives: {len(drives)} drives but {len(experts)} expert drives")
    pairs = list(zip(drives, experts if experts is not None else [None] * len(drives)))
    groups: dict[str, list] = {}
    for d, e in pairs:
        groups.setdefault(d.metrics.scenario, []).append((d, e))
    out = summarize([d.metrics for d in drives])
    for name, members in [*sorted(groups.items()), ("all", pairs)]:
        if not members:
            continue
        ms = [d.metrics for d, _ in members]
        cycles = Counter()
        for d, _ in members:
            cycles.update(d.counts)
        ticks = sum(m.steps + 1 for m in ms)
        row = out[name]
        row.update(
            collisions=sum(m.collision for m in ms),
            at_fault_collisions=sum(m.at_fault_collision for m in ms),
            collision_kinds=dict(sorted(Counter(m.collision_kind for m in ms if m.collision).items())),
            timeouts=sum(m.reason == "timeout" for m in ms),
            off_road=sum(m.reason == "off_road" for m in ms),
            mean_speed=float(np.mean([m.mean_speed for m in ms])),
            planner_ms_p50=_percentile([d.planner_ms for d, _ in members], 50),
            planner_ms_p99=_percentile([d.planner_ms for d, _ in members], 99),
        )
        if cycles:
            row.update(
                fast_rate=cycles["fast"] / ticks,
                slow_rate=cycles["slow"] / ticks,
                fallback_rate=(cycles["fallback_hold"] + cycles["fallback_stop"]) / ticks,
            )
        if experts is not None:
            em = [e.metrics for _, e in members]
            expert_speed = float(np.mean([m.mean_speed for m in em]))
            row.update(
                expert_route_completion=float(np.mean([m.route_completion for m in em])),
                expert_completed=float(np.mean([m.route_completion >= 0.999 for m in em])),
                expert_collisions=sum(m.collision for m in em),
                expert_mean_speed=expert_speed,
                speed_vs_expert=row["mean_speed"] / expert_speed if expert_speed > 0 else math.nan,
            )
    return out


def run_info(workers: fanout.Workers, wall_s: float) -> dict:
    """The report's ``run`` entry: where the drives ran, how long it took, the machine's load then."""
    return {"workers": workers.count, "ray_address": workers.address, "wall_s": wall_s, "load_average": os.getloadavg()}


def strip_timing(obj):
    """``obj`` (a report, nested dicts and lists) without the keys of :data:`TIMING_KEYS`: what two runs
    of the same episodes and model agree on."""
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


__all__ = [
    "DRIVER_KINDS",
    "SPLIT",
    "TIMING_KEYS",
    "Drive",
    "DriveJob",
    "DriverSpec",
    "build_planner",
    "checkpoint_rig",
    "drive_episode",
    "episode_record",
    "episodes",
    "loop_config",
    "node_params",
    "run_drivers",
    "run_info",
    "strip_timing",
    "summarize_drives",
]
