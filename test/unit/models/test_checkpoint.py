"""Checkpoint folders: round trip, corruption and config errors, model config validation."""

import json

import numpy as np
import pytest
import torch

from wamdiff_ros.config import ConfigError
from wamdiff_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, read_config
from wamdiff_ros.planners.wamdiff.config import ModelConfig, tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(routing="expert_choice", seed=0):
    torch.manual_seed(seed)
    net = WamDiffNet(tiny_config(routing)).eval()
    with torch.no_grad():
        for blk in net.transformer.blocks:
            if blk.moe is not None:
                torch.nn.init.normal_(blk.moe.lora_b, std=0.1)
    return net


def _inputs(net):
    g = torch.Generator().manual_seed(0)
    cam = net.cfg.rig_obj.cameras[0]
    n_cam = len(net.cfg.rig_obj.cameras)
    images = torch.randint(0, 255, (1, n_cam, cam.height, cam.width, 3), generator=g, dtype=torch.uint8)
    ego = torch.randn(1, 6 + 4 * net.cfg.encoder.history, generator=g)
    prompt = torch.from_numpy(net.layout.prompt_ids(net.space.text, "left", "slow down"))[None]
    return images, ego, prompt


@pytest.mark.parametrize("routing", ["expert_choice", "token_choice"])
def test_round_trip_gives_identical_outputs(tmp_path, routing):
    net = _net(routing)
    path = net.save(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    doc = read_config(path)
    assert doc["family"] == "wamdiff" and doc["config"]["rig"]["name"] == "tiny_2cam"
    assert doc["meta"]["quantisation"]["x"]["bins"] == 50
    back = WamDiffNet.load(path)
    assert {**back.cfg.to_dict(), "text_tokens": []} == net.cfg.to_dict()
    assert back.space.text.tokens == net.space.text.tokens
    with torch.no_grad():
        kv_a, c_a, _ = net.encode(*_inputs(net))
        kv_b, c_b, _ = back.encode(*_inputs(back))
        ids = torch.full((1, net.layout.traj_len), net.space.text.mask_id)
        la = net.step(kv_a, ids, net.layout.traj_offset)[0]
        lb = back.step(kv_b, ids, back.layout.traj_offset)[0]
    assert torch.equal(kv_a, kv_b) and torch.equal(c_a, c_b) and torch.equal(la, lb)


def test_no_pickle_in_checkpoint(tmp_path):
    path = _net().save(tmp_path / "c")
    raw = (path / WEIGHTS_FILE).read_bytes()
    n = int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, JSON header, raw tensors
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["family"] == "wamdiff"
    assert all(v["dtype"] in ("F32", "I64") for k, v in header.items() if k != "__metadata__")
    json.loads((path / CONFIG_FILE).read_text())


def test_corrupt_weights_are_refused(tmp_path):
    path = _net().save(tmp_path / "c")
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        WamDiffNet.load(path)


def test_truncated_weights_with_matching_hash_are_refused(tmp_path):
    path = _net().save(tmp_path / "c")
    (path / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    doc = json.loads((path / CONFIG_FILE).read_text())
    import hashlib

    doc["weights_sha256"] = hashlib.sha256((path / WEIGHTS_FILE).read_bytes()).hexdigest()
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="cannot read"):
        WamDiffNet.load(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        WamDiffNet.load(tmp_path / "nope")
    path = _net().save(tmp_path / "c")
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        WamDiffNet.load(path)
    (path / CONFIG_FILE).write_text("{ broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        WamDiffNet.load(path)
    (path / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        WamDiffNet.load(path)


def test_config_that_does_not_fit_the_weights(tmp_path):
    path = _net().save(tmp_path / "c")
    doc = json.loads((path / CONFIG_FILE).read_text())
    doc["config"]["transformer"]["d_model"] = 32
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not fit"):
        WamDiffNet.load(path)
    doc["config"]["transformer"]["width"] = 32
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown key"):
        WamDiffNet.load(path)


def test_config_validation_and_yaml():
    cfg = ModelConfig.from_yaml("models/wamdiff_small.yaml", vocab=["hello"])
    assert cfg.scene_len == 3 * 32 + 1 and cfg.rig_obj.names == ["front", "front_left", "front_right"]
    assert cfg.decoding.order_for("lane_change_left") == "reverse_causal"
    assert cfg.decoding.order_for("straight") == "low_confidence"
    cfg.decoding.order_map["merge"] = "causal"
    assert cfg.decoding.order_for("lane_change_left", scenario="merge") == "causal"
    assert ModelConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    bad = cfg.to_dict()
    bad["moe"]["routing"] = "soft"
    with pytest.raises(ConfigError, match=r"moe.routing"):
        ModelConfig.from_dict(bad)
    bad = cfg.to_dict()
    bad["decoding"]["order_map"] = {"left": "spiral"}
    with pytest.raises(ConfigError, match="spiral"):
        ModelConfig.from_dict(bad)
    bad = cfg.to_dict()
    bad["rig"]["cameras"][0]["width"] = 250
    with pytest.raises(ConfigError, match="multiples of its stride"):
        ModelConfig.from_dict(bad)


def test_default_model_size_within_20_mb(tmp_path):
    cfg = ModelConfig.from_yaml("models/wamdiff_small.yaml", vocab=[f"w{i}" for i in range(600)])
    net = WamDiffNet(cfg)
    path = net.save(tmp_path / "small")
    size = (path / WEIGHTS_FILE).stat().st_size
    assert size <= 20e6, size


def test_text_ids_survive_a_change_of_base_words(tmp_path, monkeypatch):
    from wamdiff_ros.models import text_tokenizer

    net = _net()
    path = net.save(tmp_path / "c")
    monkeypatch.setattr(text_tokenizer, "BASE_WORDS", ("zebra", *text_tokenizer.BASE_WORDS))
    assert WamDiffNet(net.cfg).space.text.tokens != net.space.text.tokens  # a rebuild would shift ids
    assert WamDiffNet.load(path).space.text.tokens == net.space.text.tokens
    doc = json.loads((path / CONFIG_FILE).read_text())
    doc["config"]["text_tokens"] = ["car", *doc["config"]["text_tokens"]]
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="text tokens"):
        WamDiffNet.load(path)


def test_weights_without_a_recorded_hash_load_unverified(tmp_path):
    from wamdiff_ros.models.checkpoint import verify_weights

    path = _net().save(tmp_path / "c")
    assert verify_weights(path, read_config(path)) is True
    doc = json.loads((path / CONFIG_FILE).read_text())
    del doc["weights_sha256"]
    (path / CONFIG_FILE).write_text(json.dumps(doc))
    assert verify_weights(path, doc) is False
    WamDiffNet.load(path)


SHIPPED = ("wamdiff_small", "wamdiff_small_rl", "diffusiondrive_small", "autovla_small", "trajmoe_small")


def test_every_model_folder_is_listed_here():
    from wamdiff_ros.paths import resolve

    found = {p.parent.name for p in resolve("wamdiff_small", "models").parent.glob(f"*/{CONFIG_FILE}")}
    assert found == set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_load_verified_and_plan(name):
    """Each shipped model: the weights match their recorded hash, stay within 20 MB, have a model card,
    and its family's planner loads them and plans a frame of the model's own rig."""
    from unit.helpers.runtime import observation
    from wamdiff_ros.models.checkpoint import verify_weights
    from wamdiff_ros.paths import resolve
    from wamdiff_ros.planners.base import load_planner

    folder = resolve(name, "models")
    assert verify_weights(folder, read_config(folder)) is True
    assert (folder / WEIGHTS_FILE).stat().st_size <= 20 * 2**20
    assert (folder / "MODEL_CARD.md").read_text().startswith(f"# {name} ")
    planner = load_planner(folder)
    result = planner.plan(observation(planner.rig))
    assert result.trajectory.poses.shape == (planner.spec.num_poses, 3)
    assert np.isfinite(result.trajectory.poses).all()


def test_check_checkpoint_refuses_without_building_the_model(tmp_path):
    from wamdiff_ros.planners.base import RigMismatchError, check_checkpoint
    from wamdiff_ros.rig import load_rig

    net = _net()
    path = net.save(tmp_path / "c")
    check = check_checkpoint(path, net.cfg.rig_obj)
    assert check.family == "wamdiff" and check.weights_verified and "match" in check.summary
    with pytest.raises(RigMismatchError, match="tiny_2cam"):
        check_checkpoint(path, load_rig("rigs/default.yaml"))
    (path / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors \\(1000 bytes\\) does not match the SHA-256"):
        check_checkpoint(path)
    doc = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**doc, "family": "nope"}))
    with pytest.raises(ValueError, match="unknown planner family 'nope'"):
        check_checkpoint(path)
