"""`wamdiff bench scaleout` helpers: shortened scenario files, byte comparison of bag folders, bad flags."""

from pathlib import Path

import pytest
import yaml

from wamdiff_ros.cli import main
from wamdiff_ros.distributed.bench import same_bytes, short_scenarios
from wamdiff_ros.sim.scenarios import load_scenarios


def test_short_scenarios_keep_names_and_cut_the_time_limit(tmp_path):
    files = short_scenarios(["highway_sparse", "cut_in"], 3.5, tmp_path)
    loaded = load_scenarios(files)
    assert [s.name for s in loaded] == ["highway_sparse", "cut_in"]
    assert [s.duration for s in loaded] == [3.5, 3.5]
    assert yaml.safe_load(Path(files[1]).read_text())["kind"] == "cut_in"
    with pytest.raises(ValueError, match="--duration"):
        short_scenarios(["highway_sparse"], 0.0, tmp_path)
    with pytest.raises(FileNotFoundError, match="no_such"):
        short_scenarios(["no_such"], 3.0, tmp_path)


def test_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "x.mcap").write_bytes(b"\x00\x01")
    assert same_bytes(a, b)
    (b / "x.mcap").write_bytes(b"\x00\x02")
    assert not same_bytes(a, b)
    (b / "x.mcap").write_bytes(b"\x00\x01")
    (b / "metadata.yaml").write_text("extra")
    assert not same_bytes(a, b)


def test_bad_flags_are_refused():
    with pytest.raises(SystemExit, match="--workers: expected >= 2"):
        main(["bench", "scaleout", "--workers", "1"])
    with pytest.raises(SystemExit, match="--repeat: expected >= 1"):
        main(["bench", "scaleout", "--repeat", "0"])
