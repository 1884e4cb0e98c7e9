"""Backends that need a GPU: torch on CUDA (eager, CUDA graph, fp16 autocast), the ONNX Runtime CUDA
provider and TensorRT engines, each against torch on the CPU. They skip, saying why, on machines
without CUDA or TensorRT."""

import importlib.util

import numpy as np
import pytest
import torch

from unit.helpers.runtime import ensure_export, graphs_by_name, observation, tiny_net
from wamdiff_ros.planners.base import on_backend
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.runtime.export import compare_backends, graph_specs
from wamdiff_ros.runtime.torch_backend import TorchBackend

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")
needs_trt = pytest.mark.skipif(not (HAS_TRT and HAS_CUDA), reason="TensorRT is not installed on this machine")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_net()
    out = tmp_path_factory.mktemp("onnx")
    meta, _ = ensure_export(net, out)
    return net, out, graph_specs(meta)


def _planners_agree(eager, other, modes=("fast", "slow")):
    for mode in modes:
        eager.set_mode(mode)
        other.set_mode(mode)
        for seed in range(3):
            obs = observation(eager.rig, seed)
            np.testing.assert_array_equal(eager.plan(obs).trajectory.poses, other.plan(obs).trajectory.poses)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_torch_cuda_matches_cpu(exported, cuda_graph):
    net, _, specs = exported
    ref = {n: TorchBackend(graphs_by_name(net)[n], s) for n, s in specs.items()}
    cuda = {n: TorchBackend(graphs_by_name(tiny_net())[n], s, "cuda", cuda_graph=cuda_graph) for n, s in specs.items()}
    assert all(b.describe()["cuda_graph"] == cuda_graph for b in cuda.values())
    diffs = compare_backends(ref, cuda, lambda n: graphs_by_name(net)[n].sample_inputs())
    assert max(v for d in diffs.values() for v in d.values()) <= 1e-4, diffs


@pytest.mark.gpu
@needs_cuda
def test_planner_on_cuda_graphs_decodes_like_cpu(exported):
    net, _, _ = exported
    eager = WamDiffPlanner(net, collect_stats=False)
    gpu = on_backend(eager, "torch", device="cuda", cuda_graph=True)
    assert gpu.runtime["cuda_graph"]
    _planners_agree(eager, gpu)


@pytest.mark.gpu
@needs_cuda
def test_torch_fp16_autocast_is_close(exported):
    net, _, specs = exported
    ref = {"step_traj_fast": TorchBackend(graphs_by_name(net)["step_traj_fast"], specs["step_traj_fast"])}
    half = {
        "step_traj_fast": TorchBackend(
            graphs_by_name(tiny_net())["step_traj_fast"], specs["step_traj_fast"], "cuda", "fp16"
        )
    }
    diffs = compare_backends(ref, half, lambda n: graphs_by_name(net)[n].sample_inputs())
    assert diffs["step_traj_fast"]["logits"] <= 5e-2


@pytest.mark.gpu
@needs_cuda
def test_onnxruntime_cuda_provider(exported):
    from wamdiff_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend, check_provider

    try:
        check_provider("cuda")
    except Exception as e:
        pytest.skip(str(e))
    net, out, specs = exported
    ref = {n: TorchBackend(graphs_by_name(net)[n], s) for n, s in specs.items()}
    ort = {n: OnnxRuntimeBackend(out / s.file, s, "cuda") for n, s in specs.items()}
    diffs = compare_backends(ref, ort, lambda n: graphs_by_name(net)[n].sample_inputs())
    assert max(v for d in diffs.values() for v in d.values()) <= 1e-4, diffs


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_fp32_engines_match_torch_and_are_cached(exported, tmp_path):
    from wamdiff_ros.runtime.engine_cache import ensure_engine
    from wamdiff_ros.runtime.tensorrt_backend import TensorRTBackend, TensorRTBuilder

    net, out, specs = exported
    builder = TensorRTBuilder(workspace_bytes=256 << 20)
    engines = {}
    for n, s in specs.items():
        st = ensure_engine(out / s.file, "fp32", builder, s.io_shapes(), tmp_path)
        assert st.action == "built"
        assert ensure_engine(out / s.file, "fp32", builder, s.io_shapes(), tmp_path).action == "reused"
        engines[n] = TensorRTBackend(st.path, s)
    ref = {n: TorchBackend(graphs_by_name(net)[n], s) for n, s in specs.items()}
    diffs = compare_backends(ref, engines, lambda n: graphs_by_name(net)[n].sample_inputs())
    assert max(v for d in diffs.values() for v in d.values()) <= 1e-3, diffs


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_planner_decodes_like_torch(exported, tmp_path):
    net, out, _ = exported
    eager = WamDiffPlanner(net, collect_stats=False)
    trt = on_backend(eager, "tensorrt", device="cuda", export_dir=out, engine_dir=tmp_path)
    _planners_agree(eager, trt, modes=("fast",))
