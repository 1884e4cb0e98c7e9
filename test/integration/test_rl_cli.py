"""`wamdiff rl` end to end on a tiny model and bag: the run, resume, the report (curves, before/after
table of the start model and best/ on held-out bags), and argument errors naming the input."""

import json

import pytest
import torch
import yaml
from unit.helpers.training import tiny_cfg, write_tiny_bag

from wamdiff_ros.cli import main
from wamdiff_ros.planners.wamdiff.net import WamDiffNet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl_cli")
    torch.manual_seed(0)
    model = WamDiffNet(tiny_cfg()).save(root / "tiny_model")
    bag = write_tiny_bag(root / "tiny.mcap")
    settings = {
        "group_size": 6, "scenes_per_step": 3, "every": 4, "epochs": 50, "lr": 1.0e-3, "threads": 1,
        "val_frames": 3, "val_every_steps": 2, "reward": {"ade_weight": 1.0},
    }  # fmt: skip
    (root / "rl.yaml").write_text(yaml.safe_dump(settings))
    return root, str(model), str(bag)


def test_rl_run_resume_and_report(setup, capsys):
    root, model, bag = setup
    out = root / "run"
    argv = ["rl", "--model", model, "--data", bag, "--val", bag, "--out", str(out), "--config", str(root / "rl.yaml")]
    argv += ["--no-progress", "--no-cache", "--algorithm", "grpo"]
    assert main([*argv, "--max-steps", "2"]) == 0
    assert json.loads((out / "last" / "trainer_state.json").read_text())["step"] == 2
    assert main([*argv, "--max-steps", "4", "--resume", "--test", bag, "--test-every", "4"]) == 0
    err = capsys.readouterr().err
    assert "GRPO" in err and "resumed at step 2" in err and "4 steps" in err
    report = out / "report"
    assert (report / "curves.png").stat().st_size > 10_000
    compare = json.loads((report / "compare.json").read_text())
    assert set(compare) == {"start/fast", "start/adaptive", "rl/fast", "rl/adaptive"}
    assert compare["rl/fast"]["ade"] < compare["start/fast"]["ade"]  # reward −ADE: the tuned model is closer
    text = (report / "README.md").read_text()
    assert "| rl/fast |" in text and "Validation PDMS" in text


def test_rl_argument_errors(setup, capsys):
    root, model, bag = setup
    base = ["rl", "--data", bag, "--out", str(root / "bad"), "--no-progress", "--no-cache"]
    assert main([*base, "--model", str(root / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main([*base, "--model", model, "--test-modes", "fast,turbo"]) == 2
    assert "--test-modes" in capsys.readouterr().err
    assert main([*base, "--model", model, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main([*base, "--model", model, "--group-size", "1"]) == 2
    assert "group_size=1" in capsys.readouterr().err
