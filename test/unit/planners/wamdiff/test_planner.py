"""The WAM-Diff planner behind the Planner interface: PlanResult contents, fast/slow/adaptive modes,
scenario-aware order choice, registry loading and rig checks."""

import numpy as np
import pytest
import torch

from wamdiff_ros.models.checkpoint import CheckpointError
from wamdiff_ros.planners.base import Planner, RigMismatchError, checkpoint_family, load_planner
from wamdiff_ros.planners.wamdiff import WamDiffPlanner, fresh_planner
from wamdiff_ros.planners.wamdiff.config import GateConfig, TrajectoryTokensConfig, tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.planning.motion import constant_twist_path
from wamdiff_ros.rig import Rig, load_rig
from wamdiff_ros.types import EgoState, Observation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _obs(rig: Rig, command="straight", seed=0, **kw) -> Observation:
    rng = np.random.default_rng(seed)
    images = {c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    hist = np.stack([np.linspace(-6, -1.5, 4), np.zeros(4), np.zeros(4)], 1)
    return Observation(
        images=images,
        ego=EgoState(pose=[10.0, 2.0, 0.3], velocity=[8.0, 0.0]),
        stamp_ns=12_500_000_000,
        command=command,
        instruction="slow down the lead car brakes",
        ego_history=hist,
        **kw,
    )


def _planner(routing="expert_choice", mode=None, **gate):
    torch.manual_seed(0)
    cfg = tiny_config(routing)
    if gate:
        cfg.gate = GateConfig(**gate)
    return WamDiffPlanner(WamDiffNet(cfg), mode=mode)


@pytest.mark.parametrize("routing", ["expert_choice", "token_choice", "none"])
def test_fast_plan_fills_plan_result(routing):
    p = _planner(routing, mode="fast")
    assert isinstance(p, Planner)
    res = p.plan(_obs(p.rig))
    assert res.mode == "fast" and res.reasoning == ""
    assert res.trajectory.poses.shape == (8, 3) and res.trajectory.is_finite()
    assert res.trajectory.frame == "base_link" and res.trajectory.stamp_ns == 12_500_000_000
    assert res.confidences.shape == (8,) and ((res.confidences > 0) & (res.confidences <= 1)).all()
    assert len(res.info["token_confidences"]) == 16
    assert res.candidates.shape == (1, 8, 3) and res.candidate_scores.shape == (1,)
    assert {"preprocess", "encode", "fast_decode", "total"} <= set(res.timings_ms)
    assert all(v >= 0 for v in res.timings_ms.values())
    assert res.info["fast_steps"] == 4 and res.info["model"] == "untrained"
    if routing == "none":
        assert res.moe == {}
    else:
        assert res.moe["routing"] == routing and len(res.moe["load"]) == 2
        assert all(sum(layer) == pytest.approx(1.0) for layer in res.moe["load"])
        assert 0 < res.moe["mean_entropy"] <= res.moe["max_entropy"]
    x_bins = p.net.space.traj.x.centers
    assert np.isin(res.trajectory.poses[:, 0], x_bins).all()


def test_plan_with_a_trajectory_prior_decodes_offsets_from_the_observed_ego():
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.trajectory = TrajectoryTokensConfig(cfg.trajectory.x, cfg.trajectory.y, prior="constant_velocity")
    p = WamDiffPlanner(WamDiffNet(cfg), mode="fast")
    obs = _obs(p.rig)
    obs.ego = EgoState(pose=[10.0, 2.0, 0.3], velocity=[8.3, 0.2], yaw_rate=0.15)
    poses = p.plan(obs).trajectory.poses
    offsets = poses[:, :2] - constant_twist_path(obs.ego, cfg.spec.times)[:, :2]
    traj = p.net.space.traj
    assert np.isclose(offsets[:, :1], traj.x.values[None]).any(1).all()  # x: a bin value plus the arc
    assert np.isclose(offsets[:, 1:], traj.y.values[None]).any(1).all()
    assert not np.isclose(poses[:, :1], traj.x.values[None]).any(1).all()  # ... not a bin value alone


def test_slow_plan_returns_reasoning_and_conditions_trajectory():
    p = _planner(mode="slow")
    res = p.plan(_obs(p.rig))
    assert res.mode == "slow"
    assert isinstance(res.reasoning, str)
    assert {"encode", "reasoning", "slow_decode", "total"} <= set(res.timings_ms)
    assert "fast_decode" not in res.timings_ms
    assert res.info["reasoning_steps"] >= 1 and res.info["slow_steps"] >= 1
    assert res.candidates.shape == (1, 8, 3)
    assert p.gate.measured == 1 and p.gate.slow_cost_ms == pytest.approx(
        res.timings_ms["reasoning"] + res.timings_ms["slow_decode"], rel=0.05
    )


def test_adaptive_goes_slow_for_unsure_untrained_model_unless_budget_says_no():
    p = _planner(mode="adaptive", theta=0.99, c_min=0.9, slow_cost_ms=1.0)
    res = p.plan(_obs(p.rig))
    assert res.mode == "slow" and "confidence" in res.info["gate"]
    assert res.candidates.shape == (2, 8, 3)  # the fast plan stays as a candidate
    p.gate.per_call_ms = {"reasoning": 1e6, "trajectory": 1e6}
    res = p.plan(_obs(p.rig), budget_ms=50.0)
    assert res.mode == "fast" and "left" in res.info["gate"]
    p2 = _planner(mode="adaptive", theta=1.0, c_min=0.0)
    res = p2.plan(_obs(p2.rig))
    assert res.mode == "fast" and "simple" in res.info["gate"]


def test_scenario_aware_order_choice():
    p = _planner(mode="fast")
    p.cfg.decoding.order_map.update({"left": "reverse_causal", "merge": "causal"})
    assert p.plan(_obs(p.rig, command="left")).info["order"] == "reverse_causal"
    assert p.plan(_obs(p.rig, command="straight")).info["order"] == "low_confidence"
    p.scenario = "merge"
    assert p.plan(_obs(p.rig, command="left")).info["order"] == "causal"


def test_plan_rejects_observation_that_does_not_fit_the_rig():
    p = _planner(mode="fast")
    obs = _obs(p.rig)
    obs.images.pop("front_left")
    with pytest.raises(ValueError, match="expected cameras"):
        p.plan(obs)
    obs = _obs(p.rig)
    obs.images["front"] = np.zeros((16, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"expected 32×64×3"):
        p.plan(obs)
    with pytest.raises(ValueError, match="mode"):
        p.set_mode("medium")


def test_load_planner_by_family_and_rig_check(tmp_path):
    torch.manual_seed(0)
    net = WamDiffNet(tiny_config())
    path = net.save(tmp_path / "ckpt")
    assert checkpoint_family(path) == "wamdiff"
    p = load_planner(path, rig=net.cfg.rig_obj, mode="fast")
    assert isinstance(p, WamDiffPlanner) and p.mode == "fast"
    obs = _obs(p.rig)
    res = p.plan(obs)
    assert res.info["model"] == str(path)
    a = res.trajectory.poses
    b = WamDiffPlanner(net.eval(), mode="fast").plan(obs).trajectory.poses
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RigMismatchError, match="camera names/order differ"):
        load_planner(path, rig=load_rig())
    other = Rig.from_dict({**net.cfg.rig, "cameras": [{**c, "width": 128} for c in net.cfg.rig["cameras"]]})
    with pytest.raises(RigMismatchError, match="expected 64×32 px"):
        load_planner(path, rig=other)
    with pytest.raises(CheckpointError):
        load_planner(tmp_path / "missing")


def test_default_config_planner_on_the_default_rig():
    p = fresh_planner(mode="fast")
    assert p.rig.names == ["front", "front_left", "front_right"]
    assert p.model_size_bytes() <= 20e6
    res = p.plan(_obs(p.rig))
    assert res.mode == "fast" and res.trajectory.poses.shape == (8, 3)
    assert res.info["model"].startswith("untrained") and res.moe["num_experts"] == 8
    assert len(res.moe["load"]) == 4


def test_warm_up_seeds_the_gate_with_the_last_slow_pass_and_keeps_the_mode(monkeypatch):
    p = _planner(mode="adaptive", slow_cost_ms=500.0)
    measured = []
    record = p.gate.record_slow_pass
    monkeypatch.setattr(
        p.gate, "record_slow_pass", lambda t, steps: (measured.append(sum(t.values())), record(t, steps))
    )
    estimate = p.warm_up(_obs(p.rig), passes=3)
    assert len(measured) == 3 and p.mode == "adaptive"
    assert estimate == p.gate.slow_cost_ms == pytest.approx(measured[-1])  # not an average with the cold pass
    with pytest.raises(ValueError, match="passes must be >= 1"):
        p.warm_up(_obs(p.rig), passes=0)
