"""``wamdiff bench scaleout``: ``wamdiff collect`` on 1 worker and on ``--workers`` Ray workers, same episodes.

Both runs write a bag of the same name in their own folder; the JSON gives each run's wall time (from
the command's start to the bag in place, so a local Ray's start and stop count against the parallel
run), the speedup and whether the two bags (MCAP file and metadata.yaml) are byte-identical. With
``--repeat R`` each runs R times, alternating which goes first, and the speedup is that of the best
times (other load on the machine only ever slows a run down).
Episodes are the shipped scenarios' with their time limit cut to ``--duration`` so the default run is
short; a longer ``--duration`` or more ``--episodes`` amortises Ray's start-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

TARGET_SPEEDUP = 1.8
"""Issue target on a 2-core machine: 2 workers at least this much faster than 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=4, help="episodes per run (default 4)")
    parser.add_argument("--duration", type=float, default=8.0, help="episode time limit [s] (default 8)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["highway_sparse", "highway_medium"],
        help="scenario names or files (default highway_sparse highway_medium)",
    )
    parser.add_argument("--split", default="val", choices=("train", "val", "test"), help="seed split (default val)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel run (default 2)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, alternating which goes first; speedup of the best times"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep both bags under DIR (default: a temporary folder)")


def short_scenarios(names: list[str], duration: float, folder: Path) -> list[str]:
    """Scenario files in ``folder``: each scenario with its time limit set to ``duration`` [s]."""
    from wamdiff_ros.paths import config_path

    if not duration > 0:
        raise ValueError(f"--duration: expected > 0 s, got {duration}")
    out = []
    for name in names:
        src = Path(name) if Path(name).suffix in (".yaml", ".yml") else config_path("scenarios", f"{name}.yaml")
        if not src.is_file():
            raise FileNotFoundError(f"--scenarios: no scenario file {src}")
        data = yaml.safe_load(src.read_text())
        data["duration"] = float(duration)
        dst = folder / f"{src.stem}.yaml"
        dst.write_text(yaml.safe_dump(data))
        out.append(str(dst))
    return out


def timed_collect(argv: list[str]) -> tuple[float, dict]:
    """Wall time [s] of one ``wamdiff collect`` and its ``--json`` figures."""
    from wamdiff_ros.data import collect

    parser = argparse.ArgumentParser(prog="wamdiff collect")
    collect.add_arguments(parser)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    collect.main(args)
    wall = time.perf_counter() - t0
    return wall, json.loads(Path(args.json).read_text())


def same_bytes(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(args: argparse.Namespace) -> int:
    from wamdiff_ros.bench.report import report

    if args.workers < 2:
        raise SystemExit(f"wamdiff bench scaleout: --workers: expected >= 2 (compared with 1), got {args.workers}")
    if args.repeat < 1:
        raise SystemExit(f"wamdiff bench scaleout: --repeat: expected >= 1, got {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="wamdiff-scaleout-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            scenarios = short_scenarios(args.scenarios, args.duration, Path(tmp))
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"wamdiff bench scaleout: {e}") from None
        rows, bags = [], {}
        for rep in range(args.repeat):
            for workers in (1, args.workers) if rep % 2 == 0 else (args.workers, 1):
                run = root / f"workers{workers}"
                argv = ["--split", args.split, "--episodes", str(args.episodes), "--out", str(run / "bench.mcap")]
                argv += ["--scenarios", *scenarios, "--workers", str(workers), "--overwrite"]
                argv += ["--json", str(Path(tmp) / f"collect{workers}.json")]
                wall, stats = timed_collect(argv)
                bags[workers] = run / "bench"
                rows.append(
                    {
                        "run": rep + 1,
                        "workers": workers,
                        "episodes": stats["episodes"],
                        "frames": stats["frames"],
                        "wall_s": wall,
                        "frames_per_s": stats["frames"] / wall,
                    }
                )
        best = {w: min(r["wall_s"] for r in rows if r["workers"] == w) for w in bags}
        speedup = best[1] / best[args.workers]
        identical = same_bytes(bags[1], bags[args.workers])
        for row in rows:
            row["speedup"] = best[1] / row["wall_s"]
        meta = {
            "episodes": args.episodes,
            "duration_s": args.duration,
            "scenarios": args.scenarios,
            "split": args.split,
            "speedup": speedup,
            "byte_identical": identical,
            "repeat": args.repeat,
            "best_wall_s": {str(w): t for w, t in best.items()},
            "bags": [str(b) for b in bags.values()] if args.keep else None,
        }
        report(
            "scaleout",
            rows,
            args.json,
            meta=meta,
            targets={f"speedup with {args.workers} workers": f">= {TARGET_SPEEDUP} (got {speedup:.2f})"},
        )
        print(f"  bags byte-identical: {identical}")
    return 0 if identical else 1
