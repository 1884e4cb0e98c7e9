"""`wamdiff collect` without the world: job planning (round-robin, seed ranges) and CLI wiring."""

import pytest

from wamdiff_ros.cli import build_parser
from wamdiff_ros.data.collect import plan_jobs
from wamdiff_ros.sim.scenarios import Scenario


def scen(name, train=(0, 3)):
    return Scenario(name=name, kind="highway", env_id="highway-v0", seeds={"train": train, "val": (100, 102)})


def test_round_robin_and_seed_offset():
    a, b = scen("a"), scen("b", train=(50, 60))
    jobs = plan_jobs([a, b], "train", 5, 0)
    assert [(s.name, seed) for s, seed in jobs] == [("a", 0), ("b", 50), ("a", 1), ("b", 51), ("a", 2)]
    assert [(s.name, seed) for s, seed in plan_jobs([a, b], "val", 2, 1)] == [("a", 101), ("b", 101)]


def test_running_out_of_seeds_and_bad_counts():
    with pytest.raises(ValueError, match=r"'a' has 3 train seeds .*seed number 3"):
        plan_jobs([scen("a")], "train", 2, 2)
    with pytest.raises(ValueError, match="--episodes"):
        plan_jobs([scen("a")], "train", 0, 0)
    with pytest.raises(ValueError, match="--seed"):
        plan_jobs([scen("a")], "train", 1, -1)


def test_cli_parses_collect():
    args = build_parser().parse_args(["collect", "--split", "val", "--episodes", "3", "--out", "x.mcap", "--raw"])
    assert (args.split, args.episodes, args.out, args.raw, args.png, args.jpeg_quality) == (
        "val",
        3,
        "x.mcap",
        True,
        False,
        90,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["collect", "--split", "val", "--episodes", "1", "--out", "x", "--raw", "--png"])
