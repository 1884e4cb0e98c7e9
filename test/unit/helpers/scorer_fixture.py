"""The scorer's regression fixture: scenes and their scores frozen into one .npz, and the candidates
scored against them (regenerated from a seed, so the file stays small).

Rebuild (only when the scores are meant to change) with::

    PYTHONPATH=.:test python -m unit.helpers.scorer_fixture --bag data/test/test.mcap
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from wamdiff_ros.types import Agents, EgoState, Lane, SceneTruth, TrafficLight, TrajectorySpec

FIXTURE = Path(__file__).resolve().parents[1] / "scoring" / "data" / "scorer_regression.npz"
FIELDS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "c", "pdms", "epdms")
FIELDS += ("progress", "ep_pdms", "oncoming_progress", "collision_time", "ttc_time")
RECORDED_FRAMES = (200, 700, 1300, 1500, 1750)
"""Test-bag frames: highway (40 agents), intersection, merge (static objects), roundabout, stopped vehicle."""


def scene_to_arrays(scene: SceneTruth) -> dict[str, np.ndarray]:
    """Everything the scorer reads from ``scene`` as arrays (lane and light metadata as one JSON string)."""
    lanes = scene.lanes
    meta = {
        "lanes": [[ln.lane_id, list(ln.successors), ln.in_intersection, ln.speed_limit] for ln in lanes],
        "route": list(scene.route_lane_ids),
        "lights": sorted(scene.traffic_lights),
        "spec": scene.spec.to_dict(),
        "ego_size": list(scene.ego_size),
        "rac": scene.rear_axle_to_center,
        "scenario": scene.scenario,
        "yaw_rate": scene.ego.yaw_rate,
        "agent_dt": scene.agents.dt,
        "previous_plan_offset": scene.previous_plan_offset,
    }
    ag = scene.agents
    out = {
        "meta": np.array(json.dumps(meta)),
        "lane_points": np.concatenate([ln.centerline for ln in lanes]),
        "lane_width": np.concatenate([ln.width for ln in lanes]),
        "lane_count": np.array([len(ln.centerline) for ln in lanes]),
        "ego": np.stack([scene.ego.pose, [*scene.ego.velocity, 0.0], [*scene.ego.acceleration, 0.0]]),
        "human": scene.human_trajectory,
        "agent_ids": ag.ids,
        "agent_types": ag.types,
        "agent_sizes": ag.sizes,
        "agent_poses": ag.poses,
        "agent_velocities": ag.velocities,
        "agent_valid": ag.valid,
        "lights": np.array([np.asarray(scene.traffic_lights[k]) for k in sorted(scene.traffic_lights)], np.int64),
    }
    if scene.previous_plan is not None:
        out["previous_plan"] = scene.previous_plan
    return out


def scene_from_arrays(a: dict[str, np.ndarray]) -> SceneTruth:
    """Inverse of :func:`scene_to_arrays`."""
    meta = json.loads(str(a["meta"]))
    ends = np.cumsum(a["lane_count"])
    lanes = [
        Lane(lid, a["lane_points"][e - n : e], a["lane_width"][e - n : e], tuple(succ), bool(junction), limit)
        for (lid, succ, junction, limit), e, n in zip(meta["lanes"], ends, a["lane_count"])
    ]
    agents = Agents(
        ids=a["agent_ids"],
        types=a["agent_types"],
        sizes=a["agent_sizes"],
        poses=a["agent_poses"],
        velocities=a["agent_velocities"],
        valid=a["agent_valid"],
        dt=meta["agent_dt"],
    )
    ego = a["ego"]
    return SceneTruth(
        ego=EgoState(ego[0], velocity=ego[1, :2], acceleration=ego[2, :2], yaw_rate=meta["yaw_rate"]),
        lanes=lanes,
        route_lane_ids=meta["route"],
        agents=agents,
        human_trajectory=a["human"],
        spec=TrajectorySpec.from_dict(meta["spec"]),
        ego_size=tuple(meta["ego_size"]),
        rear_axle_to_center=meta["rac"],
        traffic_lights={k: a["lights"][i] for i, k in enumerate(meta["lights"])},
        scenario=meta["scenario"],
        previous_plan=a.get("previous_plan"),
        previous_plan_offset=meta["previous_plan_offset"],
    )


def candidates(scene: SceneTruth, count: int, seed: int) -> np.ndarray:
    """(count, T, 3) base_link candidates: constant-acceleration arcs (speed 0–1.6 × ego speed + 3 m/s,
    yaw rate ±0.6 rad/s, some reversing) and lateral shifts of the human trajectory, half each."""
    rng = np.random.default_rng(seed)
    t = np.concatenate([[0.0], scene.spec.times])
    dt = np.diff(t)
    n_arc = count // 2
    v0 = rng.uniform(-1.0, 1.6 * scene.ego.speed + 3.0, (n_arc, 1))
    acc = rng.uniform(-4.0, 3.0, (n_arc, 1))
    omega = rng.uniform(-0.6, 0.6, (n_arc, 1)) * rng.uniform(0.0, 1.0, (n_arc, 1)) ** 2
    v = np.maximum(v0 + acc * t[None, :-1], -1.0)
    yaw = np.concatenate([np.zeros((n_arc, 1)), np.cumsum(omega * dt, 1)], 1)
    step = (v * dt)[..., None] * np.stack([np.cos(yaw[:, :-1]), np.sin(yaw[:, :-1])], -1)
    arcs = np.concatenate([np.cumsum(step, 1), yaw[:, 1:, None]], -1)
    m = count - n_arc
    shift = rng.uniform(-5.0, 5.0, (m, 1)) * (t[1:] / t[-1]) ** rng.uniform(0.5, 3.0, (m, 1))
    shifted = np.repeat(scene.human_trajectory[None], m, 0)
    shifted[..., :2] *= rng.uniform(0.5, 1.4, (m, 1, 1))
    shifted[..., 1] += shift
    return np.concatenate([arcs, shifted])


def digest(arrays) -> str:
    """SHA-256 of the arrays' bytes (float64), for bit-exact comparisons."""
    h = hashlib.sha256()
    for x in arrays:
        h.update(np.ascontiguousarray(x, np.float64).tobytes())
    return h.hexdigest()


def _with_light_and_previous_plan(scene: SceneTruth) -> SceneTruth:
    """The scene with a red light on its junction lanes from 2 s on and a previous plan 0.5 s old."""
    steps = scene.agents.num_steps
    states = np.where(np.arange(steps) >= 20, TrafficLight.RED, TrafficLight.GREEN).astype(np.int64)
    scene.traffic_lights = {ln.lane_id: states for ln in scene.lanes if ln.in_intersection}
    scene.previous_plan = scene.human_trajectory * np.array([1.05, 1.0, 1.0])
    scene.previous_plan_offset = 0.5
    return scene


def build(bag: str, out: Path, per_scene: int, bench_count: int) -> None:
    """Score the bench scene (rebuilt by the test, its :func:`scene_key` kept) and ``RECORDED_FRAMES`` of
    ``bag`` (stored) with today's scorer; write the fixture."""
    from wamdiff_ros.bench.scorer import bench_candidates, bench_scene
    from wamdiff_ros.data.dataset import DrivingDataset
    from wamdiff_ros.scoring import scene_key, score

    ds = DrivingDataset([bag])
    scenes = [bench_scene(20, 0), *(ds.scene(k) for k in RECORDED_FRAMES)]
    scenes.append(_with_light_and_previous_plan(ds.scene(RECORDED_FRAMES[1] + 40)))
    arrays: dict[str, np.ndarray] = {"scenes": np.array(len(scenes)), "bench_key": np.array(scene_key(scenes[0]))}
    for i, scene in enumerate(scenes):
        count = bench_count if i == 0 else per_scene
        cands = candidates(scene, count, seed=i)
        result = score(cands, scene)
        if i:
            arrays.update({f"s{i}_{k}": v for k, v in scene_to_arrays(scene).items()})
        arrays[f"s{i}_candidates_digest"] = np.array(digest([cands]))
        arrays.update({f"s{i}_{k}": getattr(result, k) for k in FIELDS})
    bench = bench_scene(20, 0)
    cands = bench_candidates(bench, 4096, 0)
    arrays["bench4096_candidates_digest"] = np.array(digest([cands]))
    arrays["bench4096_digest"] = np.array(digest(getattr(score(cands, bench), k) for k in FIELDS))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", required=True, help="the test bag (data/test/test.mcap)")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--per-scene", type=int, default=256)
    parser.add_argument("--bench-count", type=int, default=640)
    args = parser.parse_args()
    build(args.bag, args.out, args.per_scene, args.bench_count)
