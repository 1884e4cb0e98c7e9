"""``wamdiff collect``: drive the expert in the embedded world and record the episodes as a bag.

Episodes go round-robin over the scenario types (all shipped scenarios, or ``--scenarios``); the
``j``-th episode of a scenario uses seed number ``--seed + j`` of that scenario's ``--split`` range,
so splits never share a seed and two runs with different ``--seed`` offsets never overlap. Each tick
is rendered with the rig's cameras and written by :class:`~wamdiff_ros.data.bag.BagWriter` (see its
module for topics, stamps and the ``--out`` layout); the bag appears only when the run completes.

Episodes run in parallel on Ray workers (``--workers``, ``--address``: :mod:`wamdiff_ros.distributed.fanout`),
one task per episode (:func:`record_episode`: drive the expert, render, encode the images); this
process writes the returned ticks in episode order, so the bag is byte-identical whatever the number
of workers (``--workers 1`` runs the same task in this process without Ray).

``--takeover MODEL`` records DAgger data instead (:mod:`wamdiff_ros.data.takeover`): the model drives
through the planner node's own loop, the expert takes over in turns, and only the takeovers are written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field

from wamdiff_ros.distributed import fanout
from wamdiff_ros.sim.scenarios import BAG_SPLITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, choices=BAG_SPLITS, help="seed split to draw from")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes (over all scenarios)")
    parser.add_argument(
        "--out", required=True, help="bag name: PATH.mcap (or PATH) writes the rosbag2 directory PATH/ with PATH.mcap"
    )
    parser.add_argument("--seed", type=int, default=0, help="offset into each scenario's seed range (default 0)")
    parser.add_argument("--scenarios", nargs="+", default=None, help="scenario names (default: all shipped)")
    parser.add_argument("--rig", default="rigs/default.yaml", help="camera rig file (default rigs/default.yaml)")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--raw", action="store_true", help="write sensor_msgs/Image (rgb8) instead of JPEG")
    fmt.add_argument("--png", action="store_true", help="write lossless PNG CompressedImage instead of JPEG")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag of the same name")
    parser.add_argument("--json", metavar="OUT", help="write the run's throughput figures to this JSON file")
    dagger = parser.add_argument_group("DAgger with expert takeover (wamdiff_ros.data.takeover)")
    dagger.add_argument("--takeover", metavar="MODEL", help="a checkpoint drives; record only the expert's takeovers")
    dagger.add_argument("--drive-ticks", type=int, default=20, help="ticks the model drives between takeovers (20)")
    dagger.add_argument("--takeover-ticks", type=int, default=60, help="ticks of each takeover (60)")
    fanout.add_arguments(parser)


def plan_jobs(scenarios: list, split: str, episodes: int, seed: int) -> list[tuple[object, int]]:
    """``(scenario, seed)`` per episode, round-robin over ``scenarios``; ValueError if a range runs out."""
    if episodes < 1:
        raise ValueError(f"--episodes: expected >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"--seed: expected an offset >= 0, got {seed}")
    if not scenarios:
        raise ValueError("--scenarios: expected at least one scenario")
    jobs = []
    for i in range(episodes):
        scenario = scenarios[i % len(scenarios)]
        seeds = scenario.seed_list(split)
        j = seed + i // len(scenarios)
        if j >= len(seeds):
            raise ValueError(
                f"scenario {scenario.name!r} has {len(seeds)} {split} seeds {scenario.seeds[split]}; "
                f"episode {i} needs seed number {j} (lower --episodes or --seed)"
            )
        jobs.append((scenario, seeds[j]))
    return jobs


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to record: the scenario, its seed, how its images are encoded, and with ``takeover``
    (a ``(DriverSpec, TakeoverSchedule)`` pair) the model that drives between the expert's takeovers."""

    scenario: object
    seed: int
    encoder: object
    takeover: tuple | None = None


@dataclass
class RecordedEpisode:
    """What a worker hands back for one episode.

    Attributes:
        ticks: per tick ``(LogFrame, encoded images, lanes)``; lanes (map frame) only on the first tick.
        meta: the episode's entry in the bag's ``episodes`` metadata.
    """

    ticks: list[tuple] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _takeover_driver(job: EpisodeJob):
    from wamdiff_ros.data.takeover import TakeoverDriver
    from wamdiff_ros.evaluation.closed_loop import build_planner, loop_config
    from wamdiff_ros.evaluation.loop_driver import LoopDriver
    from wamdiff_ros.sim.expert import Expert

    spec, schedule = job.takeover
    model = LoopDriver(build_planner(spec), loop_config(spec), spec.image_format)
    return TakeoverDriver(model, Expert(), schedule)


def record_episode(job: EpisodeJob) -> RecordedEpisode:
    """Drive the expert (or the model with the expert's takeovers) through one episode, render and
    encode every recorded tick (a Ray task)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from wamdiff_ros.data.takeover import takeover_episode
    from wamdiff_ros.sim.episode import run_episode
    from wamdiff_ros.sim.expert import Expert
    from wamdiff_ros.sim.renderer import shared_renderer
    from wamdiff_ros.sim.world import World

    driver = _takeover_driver(job) if job.takeover else Expert()
    world = World(job.scenario, job.seed)
    renderer = shared_renderer(job.encoder.rig, world.lanes)
    out = RecordedEpisode()
    names: list[str] = []

    def on_tick(frame, _result, images) -> None:
        if job.takeover:
            if driver.takeover is None:
                return
            frame = dataclasses.replace(frame, episode=takeover_episode(frame.episode, driver.takeover))
        first = not names or names[-1] != frame.episode
        if first:
            names.append(frame.episode)
        out.ticks.append((frame, job.encoder(images), world.lanes if first else None))

    try:
        result = run_episode(world, driver, renderer=renderer, on_tick=on_tick, score_every=0)
    finally:
        world.close()
    m = result.metrics
    out.meta = {"episode": world.episode, "scenario": job.scenario.name, "seed": job.seed, "ticks": m.steps + 1}
    out.meta["end"] = m.reason
    if job.takeover:
        out.meta.update(completion=m.route_completion, takeovers=names, recorded_ticks=len(out.ticks))
    return out


def takeover_job(model: str, rig_path: str, drive_ticks: int, takeover_ticks: int) -> tuple:
    """``EpisodeJob.takeover`` for ``--takeover MODEL``: the model as the planner node would run it
    (its parameter file's defaults, no reasoning budget) and the schedule, checked against its horizon."""
    from wamdiff_ros.data.takeover import TakeoverSchedule
    from wamdiff_ros.evaluation.closed_loop import DriverSpec, checkpoint_rig, node_params
    from wamdiff_ros.models.checkpoint import read_config
    from wamdiff_ros.planning.model import resolve_model
    from wamdiff_ros.rig import load_rig
    from wamdiff_ros.sim.world import DT
    from wamdiff_ros.types import TrajectorySpec

    folder = resolve_model(model)
    mismatch = checkpoint_rig(folder, rig_path).mismatch(load_rig(rig_path))
    if mismatch:
        raise ValueError(f"--takeover {model}: the model's rig does not match --rig {rig_path}: {mismatch}")
    spec = read_config(folder)["config"].get("spec") or {}
    horizon = TrajectorySpec(**spec).horizon if spec else TrajectorySpec().horizon
    schedule = TakeoverSchedule(drive_ticks, takeover_ticks)
    schedule.check_horizon(round(horizon / DT))
    return DriverSpec("takeover", "model", node_params(model_path=str(folder), rig_path=rig_path)), schedule


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.data.bag import BagWriter, bag_paths
    from wamdiff_ros.rig import load_rig
    from wamdiff_ros.sim.scenarios import load_scenarios
    from wamdiff_ros.sim.world import DT

    try:
        jobs = plan_jobs(load_scenarios(args.scenarios), args.split, args.episodes, args.seed)
        workers = fanout.workers_from_args(args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"wamdiff collect: {e}") from None
    rig = load_rig(args.rig)
    takeover = None
    if args.takeover:
        try:
            takeover = takeover_job(args.takeover, args.rig, args.drive_ticks, args.takeover_ticks)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"wamdiff collect: {e}") from None
    image_format = "raw" if args.raw else "png" if args.png else "jpeg"
    bag_dir, mcap = bag_paths(args.out)
    if bag_dir.exists() and not args.overwrite:
        raise SystemExit(f"wamdiff collect: {bag_dir} exists; pass --overwrite to replace it")
    t_start = time.perf_counter()
    meta = {"split": args.split, "seed_offset": args.seed, "image_format": image_format, "dt": DT}
    if takeover:
        meta["takeover"] = {"model": args.takeover, **dataclasses.asdict(takeover[1])}
    if image_format == "jpeg":
        meta["jpeg_quality"] = args.jpeg_quality
    writer = BagWriter(
        args.out,
        rig,
        image_format=image_format,
        jpeg_quality=args.jpeg_quality,
        overwrite=args.overwrite,
        metadata=meta,
    )
    tasks = [EpisodeJob(scenario, seed, writer.encoder, takeover) for scenario, seed in jobs]
    workers = workers.at_most(len(tasks))

    frames = 0

    def shown(bar, episode: RecordedEpisode) -> None:
        nonlocal frames
        frames += len(episode.ticks)
        bar.set_postfix_str(f"{frames} frames {frames / (time.perf_counter() - t_start):.1f} fps", refresh=False)

    episodes_meta = []
    episodes = fanout.map_ordered(
        record_episode, tasks, workers, total=len(tasks), desc=f"collect {args.split}", on_result=shown
    )
    with writer, contextlib.closing(episodes):
        for episode in episodes:
            for frame, encoded, lanes in episode.ticks:
                writer.write_encoded(frame, encoded, lanes)
            episodes_meta.append(episode.meta)
        writer.metadata["episodes"] = episodes_meta
    wall = time.perf_counter() - t_start
    size = mcap.stat().st_size
    driven_min = writer.frames * DT / 60.0
    stats = {
        "bag": str(bag_dir),
        "episodes": writer.episodes,
        "frames": writer.frames,
        "cameras": len(rig.cameras),
        "image_format": image_format,
        "workers": workers.count,
        "ray_address": workers.address,
        "wall_s": wall,
        "frames_per_s": writer.frames / wall,
        "realtime_factor": writer.frames * DT / wall,
        "mcap_mb": size / 1e6,
        "mb_per_driving_minute": size / 1e6 / driven_min,
    }
    print(
        f"wrote {mcap}: {stats['episodes']} episodes, {stats['frames']} frames in {wall:.1f} s "
        f"({stats['frames_per_s']:.1f} frames/s, {stats['realtime_factor']:.2f}× real time), "
        f"{stats['mcap_mb']:.1f} MB ({stats['mb_per_driving_minute']:.1f} MB per minute of driving)"
    )
    if args.json:
        atomic_write_json(args.json, stats)
    return 0
