"""``wamdiff bench scorer``: time :func:`wamdiff_ros.scoring.score` for 1, 16, 256 and 1024 candidates
against one synthetic scene: a curving 3-lane road with an oncoming lane and 20 agents.

The scene's one-off preparation (map raster, agents on the 10 Hz grid, PDM-Closed reference, human
trajectory) is timed separately as the ``cold`` row; the other rows reuse it, as RL group scoring does.
``cpu_ms`` is the process CPU time per call (all threads), a steadier figure than wall time when other
jobs share the machine; ``load_avg`` in the JSON meta records how busy it was.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from wamdiff_ros.geometry import interpolate_polyline, relative
from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, SceneTruth, TrajectorySpec

TARGET_MS_256 = 50.0
"""Issue target: 256 candidates scored in at most 50 ms."""

LANE_WIDTH = 3.6
EGO_SPEED = 15.0


def _road(offset: float, length: float = 800.0, step: float = 2.0) -> np.ndarray:
    s = np.arange(0.0, length + 1e-9, step)
    heading = 0.3 * np.sin(s / 250.0)
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(step * np.stack([np.cos(heading), np.sin(heading)], -1)[:-1], 0)])
    return xy + offset * np.stack([-np.sin(heading), np.cos(heading)], -1)


def bench_scene(num_agents: int = 20, seed: int = 0, spec: TrajectorySpec | None = None) -> SceneTruth:
    """Synthetic scoring scene: lanes 0-2 one way, lane 3 oncoming, ``num_agents`` vehicles (10 Hz, 4 s)."""
    spec = spec or TrajectorySpec()
    rng = np.random.default_rng(seed)
    lanes = [Lane(i, _road((i + 0.5) * LANE_WIDTH), LANE_WIDTH, speed_limit=20.0) for i in range(3)]
    lanes.append(Lane(3, _road(-0.5 * LANE_WIDTH)[::-1], LANE_WIDTH, speed_limit=20.0))
    steps = round(spec.horizon / 0.1) + 1
    t = np.arange(steps) * 0.1
    ego_s = 150.0
    ego = interpolate_polyline(lanes[1].centerline, ego_s)
    lane_of = rng.integers(0, 4, num_agents)
    s0 = ego_s + rng.uniform(-60.0, 120.0, num_agents)
    speed = rng.uniform(8.0, 18.0, num_agents)
    poses = np.empty((num_agents, steps, 3))
    vel = np.empty((num_agents, steps, 2))
    for i in range(num_agents):
        cl = lanes[lane_of[i]].centerline
        sign = 1.0
        length = float(np.linalg.norm(np.diff(cl, axis=0), axis=1).sum())
        s_i = (length - s0[i]) if lane_of[i] == 3 else s0[i]
        p = interpolate_polyline(cl, s_i + sign * speed[i] * t)
        poses[i] = p
        vel[i] = speed[i] * np.stack([np.cos(p[:, 2]), np.sin(p[:, 2])], -1)
    agents = Agents(
        ids=np.arange(num_agents),
        types=np.full(num_agents, int(AgentType.VEHICLE)),
        sizes=np.tile([4.6, 1.9], (num_agents, 1)),
        poses=poses,
        velocities=vel,
        valid=np.ones((num_agents, steps), bool),
    )
    human = relative(ego, interpolate_polyline(lanes[1].centerline, ego_s + EGO_SPEED * spec.times))
    return SceneTruth(
        ego=EgoState(ego, velocity=[EGO_SPEED, 0.0]),
        lanes=lanes,
        route_lane_ids=[1],
        agents=agents,
        human_trajectory=human,
        spec=spec,
    )


def bench_candidates(scene: SceneTruth, count: int, seed: int = 0) -> np.ndarray:
    """(count, T, 3) smooth base_link candidates: speed scale 0–1.6 × ego speed, lateral end offset ±6 m."""
    rng = np.random.default_rng(seed)
    t = scene.spec.times
    horizon = scene.spec.horizon
    v = scene.ego.speed * rng.uniform(0.0, 1.6, (count, 1))
    acc = rng.uniform(-2.0, 2.0, (count, 1))
    x = np.maximum(v * t + 0.5 * acc * t**2, 0.0)
    x = np.maximum.accumulate(x, axis=1)
    u = t / horizon
    y = rng.uniform(-6.0, 6.0, (count, 1)) * (3 * u**2 - 2 * u**3)
    yaw = np.arctan2(np.gradient(y, axis=1), np.maximum(np.gradient(x, axis=1), 1e-3))
    return np.stack([x, y, yaw], -1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 256, 1024], help="candidate counts")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per size")
    parser.add_argument("--agents", type=int, default=20, help="agents in the scene")
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.bench.report import report, time_call
    from wamdiff_ros.scoring import ScorerConfig, score

    if min(args.sizes) < 1 or args.iters < 1 or args.warmup < 0 or args.agents < 0:
        raise SystemExit("bench scorer: --sizes >= 1, --iters >= 1, --warmup >= 0 and --agents >= 0 required")
    config = ScorerConfig()
    scene = bench_scene(args.agents, args.seed)
    t0 = time.perf_counter()
    first = score(scene.human_trajectory, scene, config)
    cold_ms = (time.perf_counter() - t0) * 1e3
    rows = [{"candidates": "cold (1)", "p50_ms": cold_ms, "p99_ms": cold_ms, "us_per_candidate": cold_ms * 1e3}]
    for g in args.sizes:
        cands = bench_candidates(scene, g, args.seed)
        cpu0 = time.process_time()
        stats = time_call(lambda c=cands: score(c, scene, config), args.iters, args.warmup)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / (args.iters + args.warmup)
        rows.append(
            {
                "candidates": g,
                "p50_ms": stats["p50_ms"],
                "p99_ms": stats["p99_ms"],
                "mean_ms": stats["mean_ms"],
                "us_per_candidate": stats["p50_ms"] * 1e3 / g,
                "cpu_ms": cpu_ms,
            }
        )
    mean = score(bench_candidates(scene, 256 if 256 in args.sizes else args.sizes[0], args.seed), scene, config).mean()
    at_256 = [r for r in rows if r["candidates"] == 256]
    targets = {"256 candidates p50 <= 50 ms": (at_256[0]["p50_ms"] <= TARGET_MS_256) if at_256 else "not run"}
    meta = {
        "agents": args.agents,
        "lanes": len(scene.lanes),
        "iters": args.iters,
        "warmup": args.warmup,
        "human_pdms": first.row(0)["PDMS"],
        "load_avg_1min": os.getloadavg()[0],
        "candidate_means": mean,
    }
    report("scorer", rows, args.json, meta=meta, targets=targets)
    return 0
