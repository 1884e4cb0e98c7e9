"""``wamdiff bench scaleout``: the same work on 1 worker and on ``--workers`` Ray workers.

``--work collect`` (default) runs ``wamdiff collect`` on the same episodes; both runs write a bag of
the same name in their own folder. ``--work label`` runs ``wamdiff label`` on the same frames of
``--data`` (every ``--every``-th, at most ``--max-frames``), each into its own empty label root. The
JSON gives each run's wall time (from the command's start to its output in place, so a local Ray's
start and stop count against the parallel run), the speedup and whether the two outputs (bag files,
or label files) are byte-identical. With ``--repeat R`` each runs R times, alternating which goes
first, and the speedup is that of the best times (other load on the machine only ever slows a run
down). Episodes are the shipped scenarios' with their time limit cut to ``--duration`` so the default
run is short; a longer ``--duration``, more ``--episodes`` or more frames amortise Ray's start-up.
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
    parser.add_argument(
        "--work", choices=("collect", "label"), default="collect", help="what to time (default collect)"
    )
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
    parser.add_argument("--keep", metavar="DIR", help="keep both outputs under DIR (default: a temporary folder)")
    label = parser.add_argument_group("--work label")
    label.add_argument("--data", nargs="+", metavar="BAG", help="bags whose frames are labelled")
    vocab = label.add_mutually_exclusive_group()
    vocab.add_argument(
        "--config", help="model YAML whose vocabulary is clustered from --data (e.g. config/models/trajmoe_small.yaml)"
    )
    vocab.add_argument("--model", help="checkpoint folder whose vocabulary is labelled (no clustering)")
    label.add_argument("--every", type=int, default=4, help="label every N-th frame (default 4)")
    label.add_argument("--max-frames", type=int, default=400, help="at most this many frames (default 400)")


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


def timed_command(command: str, argv: list[str]) -> tuple[float, dict]:
    """Wall time [s] of one ``wamdiff <command> argv…`` (collect or label) and the summary it wrote to ``--json``."""
    import importlib

    from wamdiff_ros.cli import COMMANDS

    module = importlib.import_module(COMMANDS[command][0])
    parser = argparse.ArgumentParser(prog=f"wamdiff {command}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    module.main(args)
    wall = time.perf_counter() - t0
    return wall, json.loads(Path(args.json).read_text())


def same_bytes(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same files (recursively) with the same bytes."""
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def run_once(args: argparse.Namespace, workers: int, out: Path, scratch: Path, scenarios: list[str]) -> dict:
    """One timed run of ``args.work`` on ``workers`` into the empty folder ``out``: its row of the table."""
    summary_json = str(scratch / f"{args.work}{workers}.json")
    if args.work == "collect":
        argv = ["--split", args.split, "--episodes", str(args.episodes), "--out", str(out / "bench.mcap")]
        argv += ["--scenarios", *scenarios, "--workers", str(workers), "--overwrite", "--json", summary_json]
        wall, stats = timed_command("collect", argv)
        return {
            "episodes": stats["episodes"],
            "frames": stats["frames"],
            "wall_s": wall,
            "frames_per_s": stats["frames"] / wall,
        }
    vocab = ["--config", args.config] if args.config else ["--model", args.model]
    argv = [*vocab, "--data", *args.data, "--labels", str(out), "--workers", str(workers)]
    argv += ["--every", str(args.every), "--max-frames", str(args.max_frames), "--json", summary_json]
    wall, stats = timed_command("label", argv)
    return {
        "frames": stats["frames"],
        "scored": stats["scored"],
        "wall_s": wall,
        "frames_per_s": stats["frames"] / wall,
    }


def main(args: argparse.Namespace) -> int:
    import shutil

    from wamdiff_ros.bench.report import report

    if args.workers < 2:
        raise SystemExit(f"wamdiff bench scaleout: --workers: expected >= 2 (compared with 1), got {args.workers}")
    if args.repeat < 1:
        raise SystemExit(f"wamdiff bench scaleout: --repeat: expected >= 1, got {args.repeat}")
    if args.work == "label" and not (args.data and (args.config or args.model)):
        raise SystemExit("wamdiff bench scaleout: --work label needs --data BAG… and --config YAML or --model DIR")
    with tempfile.TemporaryDirectory(prefix="wamdiff-scaleout-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        scenarios = []
        if args.work == "collect":
            try:
                scenarios = short_scenarios(args.scenarios, args.duration, Path(tmp))
            except (ValueError, FileNotFoundError) as e:
                raise SystemExit(f"wamdiff bench scaleout: {e}") from None
        rows, outputs = [], {}
        for rep in range(args.repeat):
            for workers in (1, args.workers) if rep % 2 == 0 else (args.workers, 1):
                out = root / f"workers{workers}"
                if args.work == "label":
                    shutil.rmtree(out, ignore_errors=True)
                outputs[workers] = out
                rows.append({"run": rep + 1, "workers": workers, **run_once(args, workers, out, Path(tmp), scenarios)})
        best = {w: min(r["wall_s"] for r in rows if r["workers"] == w) for w in outputs}
        speedup = best[1] / best[args.workers]
        identical = same_bytes(outputs[1], outputs[args.workers])
        for row in rows:
            row["speedup"] = best[1] / row["wall_s"]
        meta = {
            "work": args.work,
            "speedup": speedup,
            "byte_identical": identical,
            "repeat": args.repeat,
            "best_wall_s": {str(w): t for w, t in best.items()},
            "outputs": [str(o) for o in outputs.values()] if args.keep else None,
        }
        if args.work == "collect":
            meta.update(episodes=args.episodes, duration_s=args.duration, scenarios=args.scenarios, split=args.split)
        else:
            meta.update(
                data=args.data, vocabulary=args.config or args.model, every=args.every, max_frames=args.max_frames
            )
        report(
            f"scaleout_{args.work}",
            rows,
            args.json,
            meta=meta,
            targets={f"speedup with {args.workers} workers": f">= {TARGET_SPEEDUP} (got {speedup:.2f})"},
        )
        print(f"  outputs byte-identical: {identical}")
    return 0 if identical else 1
