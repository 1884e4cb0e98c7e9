"""`wamdiff bench scaleout` helpers: shortened scenario files, byte comparison of bag folders, bad flags."""

from pathlib import Path

import pytest
import yaml

from wamdiff_ros.bench.scaleout import same_bytes, short_scenarios
from wamdiff_ros.cli import main
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


def test_label_work_needs_data():
    with pytest.raises(SystemExit, match="--work label needs --data BAG… and --config YAML or --model DIR"):
        main(["bench", "scaleout", "--work", "label"])


@pytest.mark.slow
def test_label_work_times_both_runs_and_compares_the_label_files(tmp_path):
    """`--work label` on a tiny vocabulary: both runs label the same frames into their own root, the
    files (vocabulary and labels) are byte-identical, and the JSON has both wall times."""
    pytest.importorskip("ray")
    import json

    from unit.helpers.training import write_tiny_bag
    from wamdiff_ros.models.config import plain
    from wamdiff_ros.planners.trajmoe.config import tiny_config

    bag = write_tiny_bag(tmp_path / "tiny.mcap")
    doc = {k: v for k, v in tiny_config(vocab_size=16).to_dict().items() if k != "vocabulary"}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(plain(doc)))
    out = tmp_path / "bench.json"
    argv = ["bench", "scaleout", "--work", "label", "--data", str(bag), "--config", str(tmp_path / "model.yaml")]
    argv += ["--every", "5", "--max-frames", "4", "--keep", str(tmp_path / "keep"), "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["byte_identical"] is True and result["meta"]["work"] == "label"
    assert sorted(r["workers"] for r in result["rows"]) == [1, 2]
    assert all(r["frames"] == 4 and r["scored"] == 4 and r["wall_s"] > 0 for r in result["rows"])
    labels = sorted(p.name for p in (tmp_path / "keep" / "workers2").rglob("*.npy"))
    assert len(labels) == 5 and "vocabulary.npy" in labels
    assert not same_bytes(tmp_path / "keep" / "workers1", tmp_path / "keep" / "missing")
