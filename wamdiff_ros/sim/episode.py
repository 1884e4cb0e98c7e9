"""Closed-loop episodes in the embedded world, their metrics, and ``wamdiff expert-eval``.

:func:`run_episode` drives a :class:`~wamdiff_ros.sim.world.World` with any driver (an object with
``reset()`` and ``plan(frame, lanes, images) -> PlanResult``), tracking each plan with the
controller, until the route is complete, the ego collides, leaves the road or time runs out. Each
tick calls ``on_tick(frame, plan_result, images)`` (the recorder writes bags from it). After the
episode, the driver's plans are scored NAVSIM-style with :func:`~wamdiff_ros.scenes.scene_at` on
the episode's own log (the other agents' logged futures), every ``score_every`` ticks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from wamdiff_ros.control.tracker import Tracker
from wamdiff_ros.scenes import future_available, scene_at
from wamdiff_ros.scoring.closed_loop import driving_score, infraction_penalty
from wamdiff_ros.sim.roadnet import crop_lanes
from wamdiff_ros.sim.world import CROP_RADIUS, DT, World
from wamdiff_ros.types import Lane, LogFrame, PlanResult, TrajectorySpec

HC_BOUNDS = {"lon_accel": (-4.05, 2.40), "lat_accel": 4.89, "yaw_rate": 0.95}
"""NAVSIM history-comfort bounds used for the per-tick comfort rate [m/s², m/s², rad/s]."""


@dataclass
class EpisodeMetrics:
    """One episode's closed-loop figures.

    Attributes:
        scenario, kind, seed: which episode.
        steps: ticks driven; duration: simulated time [s].
        reason: why it ended (``route_complete``, ``collision``, ``timeout``, ``off_road``).
        collision: the ego collided; at_fault_collision: and it was at fault; collision_kind: rear/side/front/stopped.
        route_completion: progress / route length in [0, 1]; progress, route_length [m].
        mean_pdms, mean_epdms: means over the scored ticks (nan when none could be scored; the ticks
            before an at-fault collision or off-road ending score 0, see :func:`score_log`); scored: their number.
        driving_score: the CARLA leaderboard's driving score [%] (:mod:`wamdiff_ros.scoring.closed_loop`):
            route completion in percent times 0.60 for a collision (every collision here is with a
            vehicle; at fault or not, as the leaderboard counts); leaving the road ends the route
            without a penalty, as the leaderboard's route deviation does.
        comfort: fraction of ticks within NAVSIM's history-comfort bounds.
        mean_speed [m/s]; plan_ms: mean driver time per tick; step_ms: mean world step time [ms].
    """

    scenario: str
    kind: str
    seed: int
    steps: int
    duration: float
    reason: str
    collision: bool
    at_fault_collision: bool
    collision_kind: str
    route_completion: float
    progress: float
    route_length: float
    mean_pdms: float
    mean_epdms: float
    scored: int
    driving_score: float
    comfort: float
    mean_speed: float
    plan_ms: float
    step_ms: float


@dataclass
class EpisodeResult:
    """Metrics plus the log: frames, the driver's plan (T, 3) base_link per frame, the full lane map,
    the route progress [m] at each frame and (with ``keep_results``) the driver's PlanResult per frame."""

    metrics: EpisodeMetrics
    frames: list[LogFrame]
    plans: list[np.ndarray]
    lanes: list[Lane]
    results: list[PlanResult] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)


def comfort_rate(frames: list[LogFrame]) -> float:
    """Fraction of ticks whose ego acceleration and yaw rate are within :data:`HC_BOUNDS`."""
    if not frames:
        return float("nan")
    acc = np.array([f.ego.acceleration for f in frames])
    yaw = np.array([f.ego.yaw_rate for f in frames])
    lo, hi = HC_BOUNDS["lon_accel"]
    ok = (acc[:, 0] >= lo) & (acc[:, 0] <= hi) & (np.abs(acc[:, 1]) <= HC_BOUNDS["lat_accel"])
    ok &= np.abs(yaw) <= HC_BOUNDS["yaw_rate"]
    return float(ok.mean())


def score_log(
    frames: list[LogFrame],
    plans: list[np.ndarray],
    lanes: list[Lane],
    spec: TrajectorySpec,
    every: int = 5,
    config=None,
    failed_ending: bool = False,
) -> tuple[list[float], list[float]]:
    """PDMS and EPDMS of ``plans[k]`` against the log's own future, for every ``every``-th frame that
    has a full horizon of future (NAVSIM pseudo-simulation on the episode's log).

    When the episode ended in a failure that one of NAVSIM's multipliers zeroes (``failed_ending``:
    an at-fault collision, NC; leaving the road, DAC), the frames whose horizon reaches the end score 0
    (their driven future holds the failure) instead of going unscored; otherwise a failure never
    lowered the score, and an episode that failed within its first horizon had none. Other endings
    leave those frames unscored."""
    from wamdiff_ros.scoring import score

    pdms, epdms = [], []
    for k in range(0, len(frames), max(1, every)):
        if not future_available(frames, k, spec):
            if not failed_ending:
                break
            pdms.append(0.0)
            epdms.append(0.0)
            continue
        near = crop_lanes(lanes, frames[k].ego.pose[:2], CROP_RADIUS, keep=frames[k].route_lane_ids)
        prev = plans[k - 1] if k > 0 else None
        scene = scene_at(frames, near, k, spec, previous_plan=prev, previous_plan_offset=DT if k > 0 else 0.0)
        r = score(plans[k][None], scene, config)
        pdms.append(float(r.pdms[0]))
        epdms.append(float(r.epdms[0]))
    return pdms, epdms


def run_episode(
    world: World,
    driver,
    tracker: Tracker | None = None,
    renderer=None,
    on_tick: Callable[[LogFrame, PlanResult, dict | None], None] | None = None,
    spec: TrajectorySpec | None = None,
    score_every: int = 5,
    keep_results: bool = False,
) -> EpisodeResult:
    """Drive one episode closed loop from ``world``'s current state (reset first if it is over).

    ``renderer`` (optional) has ``render(ego_pose, agents) -> {camera: image}``; images go to the
    driver and to ``on_tick``. ``score_every=0`` skips the log scoring (PDMS nan).
    """
    spec = spec or TrajectorySpec()
    tracker = tracker or Tracker(dt=DT)
    if world.done or world.time > 0:
        world.reset()
    driver.reset()
    tracker.reset()
    frames: list[LogFrame] = []
    plans: list[np.ndarray] = []
    results: list[PlanResult] = []
    progress: list[float] = []
    plan_s = step_s = 0.0
    while True:
        frame = world.frame()
        images = renderer.render(frame.ego.pose, frame.agents) if renderer is not None else None
        t0 = time.perf_counter()
        result = driver.plan(frame, world.lanes_near(frame.ego.pose), images)
        plan_s += time.perf_counter() - t0
        if on_tick is not None:
            on_tick(frame, result, images)
        frames.append(frame)
        progress.append(world.route_progress)
        plans.append(np.asarray(result.trajectory.poses))
        if keep_results:
            results.append(result)
        if world.done:
            break
        accel, steer = tracker.track(result.trajectory, frame.ego)
        t0 = time.perf_counter()
        world.step(accel, steer)
        step_s += time.perf_counter() - t0

    c = world.collision
    at_fault = bool(c is not None and c.at_fault)
    pdms, epdms = (
        score_log(frames, plans, world.lanes, spec, score_every, failed_ending=at_fault or world.reason == "off_road")
        if score_every > 0
        else ([], [])
    )
    steps = len(frames) - 1
    metrics = EpisodeMetrics(
        scenario=world.scenario.name,
        kind=world.scenario.kind,
        seed=world.seed,
        steps=steps,
        duration=world.time,
        reason=world.reason,
        collision=c is not None,
        at_fault_collision=at_fault,
        collision_kind=c.kind if c is not None else "",
        route_completion=world.completion,
        progress=world.route_progress,
        route_length=world.route_length,
        mean_pdms=float(np.mean(pdms)) if pdms else float("nan"),
        mean_epdms=float(np.mean(epdms)) if epdms else float("nan"),
        scored=len(pdms),
        driving_score=driving_score(
            100.0 * world.completion, infraction_penalty({"collisions_vehicle": int(c is not None)})
        ),
        comfort=comfort_rate(frames),
        mean_speed=float(np.mean([f.ego.speed for f in frames])),
        plan_ms=1e3 * plan_s / max(len(frames), 1),
        step_ms=1e3 * step_s / max(steps, 1),
    )
    return EpisodeResult(metrics, frames, plans, world.lanes, results, progress)


def summarize(metrics: list[EpisodeMetrics]) -> dict[str, dict[str, float]]:
    """Per-scenario and overall (``"all"``) figures: episodes, collision and at-fault collision rates,
    mean route completion, share of completed routes, mean PDMS / EPDMS, driving score, comfort, mean plan time."""
    groups: dict[str, list[EpisodeMetrics]] = {}
    for m in metrics:
        groups.setdefault(m.scenario, []).append(m)
    groups = dict(sorted(groups.items()))
    groups["all"] = list(metrics)
    out = {}
    for name, ms in groups.items():
        if not ms:
            continue
        out[name] = {
            "episodes": len(ms),
            "collision_rate": float(np.mean([m.collision for m in ms])),
            "at_fault_collision_rate": float(np.mean([m.at_fault_collision for m in ms])),
            "route_completion": float(np.mean([m.route_completion for m in ms])),
            "completed": float(np.mean([m.route_completion >= 0.999 for m in ms])),
            "mean_pdms": float(np.nanmean([m.mean_pdms for m in ms])) if any(m.scored for m in ms) else float("nan"),
            "mean_epdms": float(np.nanmean([m.mean_epdms for m in ms])) if any(m.scored for m in ms) else float("nan"),
            "driving_score": float(np.mean([m.driving_score for m in ms])),
            "comfort": float(np.mean([m.comfort for m in ms])),
            "plan_ms": float(np.mean([m.plan_ms for m in ms])),
            "step_ms": float(np.mean([m.step_ms for m in ms])),
        }
    return out


# ---- wamdiff expert-eval ---------------------------------------------------------------------------


def add_arguments(parser) -> None:
    from wamdiff_ros.sim.scenarios import SPLITS

    parser.add_argument("--split", default="test", choices=SPLITS, help="seed split (default test)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per scenario (first seeds of the split)")
    parser.add_argument("--scenarios", nargs="*", default=None, help="scenario names (default: all shipped)")
    parser.add_argument("--score-every", type=int, default=5, help="score the plan every N ticks (0: no PDMS)")
    parser.add_argument("--json", metavar="OUT", help="write per-episode metrics and the summary to this JSON file")


def _print_table(summary: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="expert closed loop")
    cols = [
        ("episodes", "{:d}"),
        ("collision_rate", "{:.1%}"),
        ("at_fault_collision_rate", "{:.1%}"),
        ("route_completion", "{:.1%}"),
        ("completed", "{:.1%}"),
        ("mean_pdms", "{:.3f}"),
        ("mean_epdms", "{:.3f}"),
        ("driving_score", "{:.1f}"),
        ("comfort", "{:.1%}"),
        ("plan_ms", "{:.1f}"),
    ]
    table.add_column("scenario")
    for name, _ in cols:
        table.add_column(name.replace("_", " "), justify="right")
    for scen, row in summary.items():
        table.add_row(scen, *[fmt.format(int(row[k]) if fmt == "{:d}" else row[k]) for k, fmt in cols])
    Console(width=max(160, Console().width)).print(table)


def main(args) -> int:
    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from tqdm import tqdm

    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.sim.expert import Expert
    from wamdiff_ros.sim.scenarios import load_scenarios

    if args.episodes < 1:
        raise SystemExit("--episodes: expected >= 1")
    scenarios = load_scenarios(args.scenarios)
    jobs = [(s, seed) for s in scenarios for seed in s.seed_list(args.split, args.episodes)]
    expert = Expert()
    metrics: list[EpisodeMetrics] = []
    t0 = time.perf_counter()

    def write(complete: bool) -> None:
        if args.json:
            report = {
                "split": args.split,
                "episodes_per_scenario": args.episodes,
                "complete": complete,
                "summary": summarize(metrics),
                "episodes": [asdict(m) for m in metrics],
            }
            atomic_write_json(args.json, report)

    with tqdm(jobs, desc=f"expert-eval {args.split}", unit="ep") as bar:
        for scenario, seed in bar:
            bar.set_postfix_str(f"{scenario.name}:{seed}")
            world = World(scenario, seed)
            metrics.append(run_episode(world, expert, score_every=args.score_every).metrics)
            world.close()
            write(complete=False)
    _print_table(summarize(metrics))
    print(f"{len(metrics)} episodes in {time.perf_counter() - t0:.0f} s")
    write(complete=True)
    return 0
