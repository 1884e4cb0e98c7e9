import json

from wamdiff_ros.bench.report import print_table, report


def test_table_shows_only_the_chosen_columns_and_json_keeps_every_key(tmp_path, capsys):
    rows = [{"rate_hz": 10.0, "e2e_mean_ms": 19.5, "hidden_figure": 123.0}]
    report("demo", rows, tmp_path / "out.json", columns=["rate_hz", "e2e_mean_ms"])
    out = capsys.readouterr().out
    assert "e2e_mean_ms" in out and "19.5" in out and "hidden_figure" not in out
    assert json.loads((tmp_path / "out.json").read_text())["rows"] == rows


def test_table_without_columns_shows_every_key(capsys):
    print_table("t", [{"a": 1}, {"b": 2.5}], width=120)
    out = capsys.readouterr().out
    assert " a " in out and " b " in out and "2.5" in out
