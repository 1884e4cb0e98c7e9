"""planner_node hot reload: a checkpoint that fails the cheap checks is refused by the parameter call itself,
a good one is swapped in, and one that fails the background load sets the parameter back to the model in
use, with the reason on /diagnostics."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from rcl_interfaces.msg import ParameterType

from wamdiff_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from wamdiff_ros.paths import resolve
from wamdiff_ros.rig import Rig
from wamdiff_ros.ros import conversions as conv
from wamdiff_ros.types import EgoState

from .conftest import RIG, cv_checkpoint, set_remote, values
from .test_planner_node import start

pytestmark = pytest.mark.ros
STRING = ParameterType.PARAMETER_STRING
TURNING = EgoState(pose=[0.0, 0.0, 0.0], velocity=[8.0, 0.0], yaw_rate=0.2)


def _last_lateral(feeder, collector) -> float:
    """Plan one frame of a turning ego: the constant-velocity model with yaw rate ends well left, without at 0."""
    t = feeder.send(ego=TURNING)
    return conv.path_poses(collector.path_for(t))[-1, 1]


def _shipped_copy(folder, weights: bytes | None = None, **config_changes):
    """models/wamdiff_small's config.json (optionally changed) with ``weights`` (default: its own)."""
    shipped = resolve("wamdiff_small", "models")
    folder.mkdir()
    doc = json.loads((shipped / CONFIG_FILE).read_text())
    doc.update(config_changes)
    (folder / CONFIG_FILE).write_text(json.dumps(doc))
    if weights is None:
        shutil.copy(shipped / WEIGHTS_FILE, folder / WEIGHTS_FILE)
    else:
        (folder / WEIGHTS_FILE).write_bytes(weights)
    return folder


def test_checkpoints_that_fail_the_cheap_checks_are_refused_by_the_parameter_call(graph, tmp_path):
    node, feeder, collector = start(graph, tmp_path)
    feeder.wait_connected()
    in_use = node.get_parameter("model_path").value
    weights = (resolve("wamdiff_small", "models") / WEIGHTS_FILE).read_bytes()
    corrupt_json = tmp_path / "corrupt_json"
    corrupt_json.mkdir()
    (corrupt_json / CONFIG_FILE).write_text('{"family": "constant_velocity", "format_ver')
    cases = {
        "truncated": (_shipped_copy(tmp_path / "truncated", weights[: len(weights) // 2]), WEIGHTS_FILE),
        "unknown family": (_shipped_copy(tmp_path / "family", family="trajmoe_v9"), "unknown planner family"),
        "wrong rig": (cv_checkpoint(tmp_path / "one_cam", rig=Rig("mono", (RIG.cameras[0],))), "rig"),
        "corrupt config": (corrupt_json, "not valid JSON"),
        "no folder": (tmp_path / "nowhere", "nowhere"),
    }
    for case, (folder, expected) in cases.items():
        res = set_remote(graph, "model_path", str(folder), STRING)
        assert not res.successful, case
        assert expected in res.reason and str(folder.name) in res.reason, (case, res.reason)
        assert node.get_parameter("model_path").value == in_use, case
    assert "SHA-256" in set_remote(graph, "model_path", str(tmp_path / "truncated"), STRING).reason
    assert "one_cam" in set_remote(graph, "model_path", str(tmp_path / "one_cam"), STRING).reason
    assert node._reloads == {"ok": 0, "rejected": 0}  # nothing reached the background load
    assert _last_lateral(feeder, collector) > 1.0  # the first model still drives


def test_good_reload_swaps_the_model_and_a_failed_load_sets_the_parameter_back(graph, tmp_path):
    node, feeder, collector = start(graph, tmp_path, backend="torch")
    feeder.wait_connected()
    assert _last_lateral(feeder, collector) > 1.0

    straight = cv_checkpoint(tmp_path / "straight", use_yaw_rate=False)
    res = set_remote(graph, "model_path", str(straight), STRING)
    assert res.successful, res.reason
    status = collector.diagnostic(lambda d: values(d).get("reload", "").startswith("loaded"), what="reload done")
    assert "weights not verified" in values(status)["reload"]  # constant_velocity records no weights hash
    assert _last_lateral(feeder, collector) == pytest.approx(0.0, abs=1e-9)

    # a weights file that matches its recorded hash but is no safetensors file passes the cheap checks
    garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"
    unbuildable = _shipped_copy(tmp_path / "unbuildable", garbage, weights_sha256=hashlib.sha256(garbage).hexdigest())
    res = set_remote(graph, "model_path", str(unbuildable), STRING)
    assert res.successful, res.reason
    status = collector.diagnostic(
        lambda d: d.level == b"\x01" and "rejected" in d.message and "unbuildable" in d.message,
        what="reload rejected",
    )
    assert "cannot read model.safetensors" in status.message
    assert f"parameters set back (model_path={straight})" in values(status)["reload"]
    assert values(status)["reloads_rejected"] == "1" and values(status)["reloads_ok"] == "1"
    assert values(status)["model_path"] == values(status)["model_path_parameter"] == str(straight)
    assert node.get_parameter("model_path").value == str(straight)
    assert node._reloads == {"ok": 1, "rejected": 1}  # setting the parameter back started no reload
    assert _last_lateral(feeder, collector) == pytest.approx(0.0, abs=1e-9)  # the model in use drives

    res = set_remote(graph, "model_path", str(tmp_path / "cv"), STRING)
    assert res.successful, res.reason
    collector.diagnostic(lambda d: values(d).get("reloads_ok") == "2", what="second reload done")
    assert _last_lateral(feeder, collector) > 1.0
