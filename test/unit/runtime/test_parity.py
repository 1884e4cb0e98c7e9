"""torch vs ONNX Runtime on the same inputs: every graph's outputs within 1e-4 (fp32), identical
decoded trajectories and MoE statistics through the planner (deterministic decoding, fast and slow), the runtime's
load_planner on a checkpoint, and clear errors for what this machine cannot run."""

import shutil

import numpy as np
import pytest
import torch

from unit.helpers.runtime import ensure_export, graphs_by_name, observation, tiny_net
from wamdiff_ros.models.checkpoint import CheckpointError
from wamdiff_ros.planners.base import load_planner, on_backend
from wamdiff_ros.planners.export import export_in_subprocess
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.backend_net import BackendNet
from wamdiff_ros.planners.wamdiff.graphs import GRAPHS
from wamdiff_ros.runtime import BackendUnavailable
from wamdiff_ros.runtime.backends import check_combination
from wamdiff_ros.runtime.export import compare_backends, graph_specs
from wamdiff_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend, check_provider
from wamdiff_ros.runtime.torch_backend import TorchBackend

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_net()
    out = tmp_path_factory.mktemp("onnx")
    meta, _ = ensure_export(net, out)
    return net, out, graph_specs(meta), graphs_by_name(net)


@pytest.mark.parametrize("io_binding", [True, False])
def test_every_graph_matches_torch_within_1e_4(exported, io_binding):
    _, out, specs, graphs = exported
    ref = {n: TorchBackend(graphs[n], s) for n, s in specs.items()}
    ort = {n: OnnxRuntimeBackend(out / s.file, s, intra_op_threads=1, io_binding=io_binding) for n, s in specs.items()}
    for seed in (0, 1):
        diffs = compare_backends(ref, ort, lambda n, seed=seed: graphs[n].sample_inputs(seed))
        assert set(diffs) == set(GRAPHS)
        for name, d in diffs.items():
            assert set(d) == set(specs[name].output_names)
            assert max(d.values()) <= 1e-4, (name, d)
    logits = ort["step_traj_fast"].run(graphs["step_traj_fast"].sample_inputs())["logits"]
    assert logits.shape == specs["step_traj_fast"].outputs[0].shape and logits.abs().max() > 0


def test_outputs_differ_for_different_inputs(exported):
    """The comparison is not vacuous: other inputs give other logits on both backends."""
    _, out, specs, graphs = exported
    ort = OnnxRuntimeBackend(out / specs["step_text"].file, specs["step_text"], intra_op_threads=1)
    a = ort.run(graphs["step_text"].sample_inputs(0))["logits"].clone()
    b = ort.run(graphs["step_text"].sample_inputs(1))["logits"]
    assert (a - b).abs().max() > 1e-2


def test_bound_inputs_follow_in_place_updates_and_new_buffers(exported):
    """An input buffer is bound once and read at every run (in-place updates count); a different buffer
    is bound anew."""
    _, out, specs, graphs = exported
    ort = OnnxRuntimeBackend(out / specs["step_text"].file, specs["step_text"], intra_op_threads=1)
    x0, x1 = graphs["step_text"].sample_inputs(0), graphs["step_text"].sample_inputs(1)
    ref0 = ort.run(x0)["logits"].clone()
    ref1 = ort.run(x1)["logits"].clone()
    assert (ref0 - ref1).abs().max() > 1e-2
    buf = {k: v.clone() for k, v in x0.items()}
    torch.testing.assert_close(ort.run(buf)["logits"], ref0, atol=0, rtol=0)
    for k, v in buf.items():
        v.copy_(x1[k])
    torch.testing.assert_close(ort.run(buf)["logits"], ref1, atol=0, rtol=0)
    torch.testing.assert_close(ort.run(x0)["logits"], ref0, atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_planner_on_onnxruntime_decodes_identical_trajectories(exported, mode):
    net, out, _, _ = exported
    eager = WamDiffPlanner(net, mode=mode, collect_stats=False)
    ort = on_backend(eager, "onnxruntime", export_dir=out, threads=1)
    torch_graphs = on_backend(eager, "torch")
    assert isinstance(ort.net, BackendNet) and ort.runtime["exported"] is None  # reused the module's export
    for seed in range(3):
        obs = observation(eager.rig, seed, command=("straight", "left")[seed % 2])
        a, b, c = eager.plan(obs), ort.plan(obs), torch_graphs.plan(obs)
        assert a.mode == b.mode == c.mode == mode
        np.testing.assert_array_equal(a.trajectory.poses, b.trajectory.poses)
        np.testing.assert_array_equal(a.trajectory.poses, c.trajectory.poses)
        np.testing.assert_allclose(a.confidences, b.confidences, rtol=1e-4, atol=1e-5)
        assert a.reasoning == b.reasoning
        assert b.moe == {}  # not asked for (collect_stats=False)


def test_planner_on_onnxruntime_reports_the_same_moe_statistics(exported):
    net, out, _, _ = exported
    eager = WamDiffPlanner(net, mode="slow", collect_stats=True)
    ort = on_backend(eager, "onnxruntime", export_dir=out, threads=1)
    obs = observation(eager.rig, 0)
    a, b = eager.plan(obs).moe, ort.plan(obs).moe
    assert a and set(a) == set(b) and a["tokens"] == b["tokens"] > 0
    for key in ("load", "importance", "entropy", "unrouted"):
        np.testing.assert_allclose(np.asarray(b[key]), np.asarray(a[key]), atol=1e-4, err_msg=key)
    assert abs(a["mean_entropy"] - b["mean_entropy"]) < 1e-4


def test_load_planner_exports_beside_the_checkpoint_and_reuses_it(tmp_path):
    net = tiny_net()
    folder = net.save(tmp_path / "ckpt")
    p = load_planner(folder, backend="onnxruntime", threads=1, mode="fast")
    assert p.runtime["export_dir"] == str(folder / "onnx") and p.runtime["exported"]
    assert (folder / "onnx" / "export.json").is_file()
    again = load_planner(folder, backend="onnxruntime", threads=1, mode="fast")
    assert again.runtime["exported"] is None
    obs = observation(p.rig, 4)
    np.testing.assert_array_equal(p.plan(obs).trajectory.poses, _eager_fast_plan(folder, obs))


def test_export_in_a_child_process_is_found_current_by_load_planner(tmp_path):
    from wamdiff_ros.planners.constant_velocity import ConstantVelocityPlanner

    folder = tiny_net().save(tmp_path / "ckpt")
    assert export_in_subprocess(folder, "torch") is False and not (folder / "onnx").exists()
    assert export_in_subprocess(folder, "onnxruntime") is True
    assert (folder / "onnx" / "export.json").is_file()
    assert load_planner(folder, backend="onnxruntime", threads=1).runtime["exported"] is None
    cv = ConstantVelocityPlanner(tiny_net().cfg.rig_obj).save(tmp_path / "cv")
    assert export_in_subprocess(cv, "onnxruntime") is False  # no graphs, nothing to export
    assert not (cv / "onnx").exists()
    (folder / "onnx" / "export.json").write_text("{}")  # the export is redone in the child
    assert export_in_subprocess(folder, "onnxruntime") is True
    assert load_planner(folder, backend="onnxruntime", threads=1).runtime["exported"] is None
    shutil.rmtree(folder / "onnx")
    (folder / "onnx").write_text("a file where the export folder goes")
    with pytest.raises(RuntimeError, match="ONNX export of .*ckpt failed"):
        export_in_subprocess(folder, "onnxruntime")
    (folder / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        export_in_subprocess(folder, "onnxruntime")


def _eager_fast_plan(folder, obs):
    return WamDiffPlanner.from_checkpoint(folder, mode="fast").plan(obs).trajectory.poses


def test_torch_cpu_fp32_is_the_eager_planner(tmp_path):
    folder = tiny_net().save(tmp_path / "ckpt")
    p = load_planner(folder, backend="torch")
    assert type(p) is WamDiffPlanner and not isinstance(p.net, BackendNet)


def test_backend_checks_inputs(exported):
    _, out, specs, graphs = exported
    ort = OnnxRuntimeBackend(out / specs["encode"].file, specs["encode"], intra_op_threads=1)
    x = graphs["encode"].sample_inputs()
    with pytest.raises(ValueError, match="input 'ego' is missing"):
        ort.run({k: v for k, v in x.items() if k != "ego"})
    with pytest.raises(ValueError, match=r"input 'images' expected shape"):
        ort.run({**x, "images": x["images"][:, :1]})


@pytest.mark.parametrize(
    ("backend", "device", "precision", "match"),
    [
        ("tensorrt", "cpu", "fp32", "set device cuda"),
        ("onnxruntime", "cpu", "fp16", "fp32 ONNX graphs"),
        ("torch", "cpu", "fp16", "CUDA autocast"),
        ("openvino", "cpu", "fp32", "expected one of"),
    ],
)
def test_bad_combinations_are_refused(backend, device, precision, match):
    with pytest.raises(ValueError, match=match):
        check_combination(backend, device, precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_named(tmp_path):
    folder = tiny_net().save(tmp_path / "ckpt")
    with pytest.raises(BackendUnavailable, match="torch CUDA not available"):
        load_planner(folder, backend="torch", device="cuda")


def test_missing_onnxruntime_cuda_provider_is_named():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailable, match="onnxruntime CUDA provider not available.*onnxruntime-gpu"):
        check_provider("cuda")


def test_missing_tensorrt_is_named(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    folder = tiny_net().save(tmp_path / "ckpt")
    with pytest.raises(BackendUnavailable, match=r"tensorrt: Python package 'tensorrt' not importable.*TensorRT ≥ 10"):
        load_planner(folder, backend="tensorrt", device="cuda")


def test_planner_node_contract(tmp_path):
    """The node's loader calls wamdiff_ros.planners.load_planner for non-default backends, then plans
    once on a blank frame: that works on onnxruntime and fails with the reason on tensorrt."""
    node = pytest.importorskip("wamdiff_ros.ros.planner_node", reason="rclpy is not installed")
    net = tiny_net()
    folder = net.save(tmp_path / "ckpt")
    params = {
        "model_path": str(folder),
        "rig_path": "rigs/tiny.yaml",
        "backend": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "engine_path": "",
        "build_only": True,
        "reasoning_mode": "fast",
    }
    planner, _ = node.load_checked_planner(params, net.cfg.rig_obj)
    assert isinstance(planner.net, BackendNet) and planner.runtime["build_only"] is True
    with pytest.raises(ValueError, match="set device cuda"):
        node.load_checked_planner({**params, "backend": "tensorrt"}, net.cfg.rig_obj)
