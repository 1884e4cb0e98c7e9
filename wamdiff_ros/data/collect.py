"""``wamdiff collect``: drive the expert in the embedded world and record the episodes as a bag.

Episodes go round-robin over the scenario types (all shipped scenarios, or ``--scenarios``); the
``j``-th episode of a scenario uses seed number ``--seed + j`` of that scenario's ``--split`` range,
so splits never share a seed and two runs with different ``--seed`` offsets never overlap. Each tick
is rendered with the rig's cameras and written by :class:`~wamdiff_ros.data.bag.BagWriter` (see its
module for topics, stamps and the ``--out`` layout); the bag appears only when the run completes.
"""

from __future__ import annotations

import argparse
import time

BAR = "{l_bar}{bar}| {n:.1f}/{total} ep [{elapsed}<{remaining}{postfix}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, choices=("train", "val", "test"), help="seed split to draw from")
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


def main(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from tqdm import tqdm

    from wamdiff_ros.atomic import atomic_write_json
    from wamdiff_ros.data.bag import BagWriter, bag_paths
    from wamdiff_ros.rig import load_rig
    from wamdiff_ros.sim.episode import run_episode
    from wamdiff_ros.sim.expert import Expert
    from wamdiff_ros.sim.renderer import Renderer
    from wamdiff_ros.sim.scenarios import load_scenarios
    from wamdiff_ros.sim.world import DT, World

    try:
        jobs = plan_jobs(load_scenarios(args.scenarios), args.split, args.episodes, args.seed)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"wamdiff collect: {e}") from None
    rig = load_rig(args.rig)
    image_format = "raw" if args.raw else "png" if args.png else "jpeg"
    bag_dir, mcap = bag_paths(args.out)
    if bag_dir.exists() and not args.overwrite:
        raise SystemExit(f"wamdiff collect: {bag_dir} exists; pass --overwrite to replace it")
    expert = Expert()
    renderer = None
    episodes_meta = []
    t_start = time.perf_counter()
    meta = {"split": args.split, "seed_offset": args.seed, "image_format": image_format, "dt": DT}
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
    with writer, tqdm(total=len(jobs), desc=f"collect {args.split}", unit="ep", bar_format=BAR) as bar:
        for scenario, seed in jobs:
            world = World(scenario, seed)
            if renderer is None:
                renderer = Renderer(rig, world.lanes)
            else:
                renderer.set_lanes(world.lanes)
            expected_ticks = scenario.duration / DT + 1
            shown = 0.0

            def on_tick(frame, _result, images, world=world, expected_ticks=expected_ticks):
                nonlocal shown
                writer.write_tick(frame, images, world.lanes if frame.episode != writer.episode else None)
                fps = writer.frames / (time.perf_counter() - t_start)
                bar.set_postfix_str(f"{frame.episode} {writer.frames} frames {fps:.1f} fps", refresh=False)
                if shown + 1 / expected_ticks < 0.99:
                    shown += 1 / expected_ticks
                    bar.update(1 / expected_ticks)

            result = run_episode(world, expert, renderer=renderer, on_tick=on_tick, score_every=0)
            bar.update(1 - shown)
            m = result.metrics
            episodes_meta.append(
                {
                    "episode": world.episode,
                    "scenario": scenario.name,
                    "seed": seed,
                    "ticks": m.steps + 1,
                    "end": m.reason,
                }
            )
            world.close()
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
