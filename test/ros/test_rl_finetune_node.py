"""rl_finetune_node: fine-tunes a tiny model on a tiny bag, publishes progress and diagnostics, copies
each improved checkpoint to published/ and sets a live planner's model_path to it; as a process it
saves last/ on Ctrl-C and resumes from there, and bad inputs exit 2 with the reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from .conftest import wait_until

pytestmark = pytest.mark.ros
from unit.helpers.training import tiny_cfg, write_tiny_bag  # noqa: E402

from wamdiff_ros.planners.wamdiff.net import WamDiffNet  # noqa: E402
from wamdiff_ros.ros.rl_finetune_node import RLFinetuneNode  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny checkpoint, a tiny bag and RL settings that make an untrained model improve quickly
    (reward −ADE, so validation ADE falls and best/ is written)."""
    root = tmp_path_factory.mktemp("rl_node")
    torch.manual_seed(0)
    model = WamDiffNet(tiny_cfg()).save(root / "tiny_model")
    bag = write_tiny_bag(root / "tiny.mcap")
    settings = {
        "group_size": 6, "scenes_per_step": 3, "every": 4, "epochs": 50, "lr": 1.0e-3, "threads": 1,
        "val_frames": 3, "val_every_steps": 2, "save_every_steps": 1, "reward": {"ade_weight": 1.0},
    }  # fmt: skip
    (root / "rl.yaml").write_text(yaml.safe_dump(settings))
    (root / "rig.yaml").write_text(yaml.safe_dump(tiny_cfg().rig_obj.to_dict()))
    return {"model": str(model), "bag": str(bag), "settings": str(root / "rl.yaml"), "rig": str(root / "rig.yaml")}


def _params(inputs, out, **kw):
    base = {
        "model_path": inputs["model"],
        "data": [inputs["bag"]],
        "val_data": [inputs["bag"]],
        "out_dir": str(out),
        "settings_path": inputs["settings"],
        "max_steps": 6,
        "planner_node": "/planner_node",
        "diagnostics_period_s": 0.2,
    }
    return {**base, **kw}


def _planner_node(graph, inputs):
    """A real planner_node driving the start model (no camera input needed: hot reload is parameter-driven)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from wamdiff_ros.ros.planner_node import PlannerNode

    params = {"model_path": inputs["model"], "rig_path": inputs["rig"], "diagnostics_period_s": 0.2}
    node = PlannerNode(context=graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return graph.add(node)


def test_fine_tunes_publishes_and_hot_reloads_the_planner(graph, tmp_path, inputs):
    planner = _planner_node(graph, inputs)
    listener = graph.add(Node("listener", context=graph.context))
    progress, diags = [], []
    listener.create_subscription(
        String, "/rl_finetune_node/progress", lambda m: progress.append(json.loads(m.data)), 10
    )
    from diagnostic_msgs.msg import DiagnosticArray

    listener.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    node = RLFinetuneNode(
        context=graph.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in _params(inputs, tmp_path / "run").items()],
    )
    graph.add(node)
    node.build()
    node.start()
    wait_until(node.done, timeout=120.0, what="the RL run to finish")
    assert not node.error and node.summary["steps"] == 6
    steps = wait_until(lambda: [p for p in progress if p["kind"] == "step"], 5.0, what="progress records")
    assert [p["step"] for p in steps] == list(range(6))
    published = sorted((tmp_path / "run" / "published").iterdir())
    assert published, "validation ADE fell: at least one checkpoint must be published"
    newest = str(published[-1].resolve())
    wait_until(lambda: planner.get_parameter("model_path").value == newest, 10.0, what="the planner's model_path")

    def status(name):
        return [{v.key: v.value for v in s.values} for d in list(diags) for s in d.status if s.name == name]

    reloaded = wait_until(
        lambda: [kv for kv in status("planner_node: planning") if kv.get("model_path") == newest], 20.0,
        what="the planner to hot-reload the published checkpoint",
    )  # fmt: skip
    assert reloaded[-1]["reloads_rejected"] == "0" and int(reloaded[-1]["reloads_ok"]) >= 1
    ours = wait_until(lambda: status("rl_finetune_node: fine-tuning"), 5.0, what="diagnostics of rl_finetune_node")
    assert ours[-1]["published"] == str(published[-1]) and "val_pdms" in ours[-1]
    assert (tmp_path / "run" / "last" / "trainer_state.json").is_file()


def _node_cmd(params: dict) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "rl_finetune_node"), "--ros-args"]
    for k, v in params.items():
        value = json.dumps(v) if isinstance(v, list) or v == "" else str(v)
        cmd += ["-p", f"{k}:={value}"]
    return cmd


def _run(cmd, timeout=120.0):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_process_ctrl_c_saves_last_and_resume_continues(tmp_path, inputs):
    out = tmp_path / "run"
    params = _params(inputs, out, planner_node="", max_steps=1000)
    proc = subprocess.Popen(
        _node_cmd(params), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    try:
        state = out / "last" / "trainer_state.json"
        deadline = time.monotonic() + 120.0
        while not state.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert state.is_file(), proc.communicate(timeout=10)[0] if proc.poll() is not None else "no last/ saved"
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    stopped_at = json.loads(state.read_text())["step"]
    assert stopped_at >= 1 and "resume point" in output
    history = json.loads((out / "history.json").read_text())
    assert len(history["steps"]) == stopped_at
    done = _run(_node_cmd({**params, "max_steps": stopped_at + 2}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resumed at step {stopped_at}" in done.stdout + done.stderr
    assert json.loads(state.read_text())["step"] == stopped_at + 2
    assert [r["step"] for r in json.loads((out / "history.json").read_text())["steps"]] == list(range(stopped_at + 2))


def test_bad_inputs_exit_2_naming_them(tmp_path, inputs):
    missing = _run(_node_cmd(_params(inputs, tmp_path / "a", data=[str(tmp_path / "nope.mcap")])))
    assert missing.returncode == 2 and "nope.mcap" in missing.stderr
    bad = _run(_node_cmd(_params(inputs, tmp_path / "b", model_path=str(tmp_path))))
    assert bad.returncode == 2 and str(tmp_path) in bad.stderr
    bad_param = _run(_node_cmd(_params(inputs, tmp_path / "c", algorithm="ppo")))
    assert bad_param.returncode == 2 and "algorithm" in bad_param.stderr
