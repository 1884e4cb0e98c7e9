"""ONNX export of the encode and per-step graphs: onnx.checker passes, static shapes, onnxruntime
matches torch within 1e-4, and a full fast decode through onnxruntime picks the same tokens."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from unit.helpers.runtime import tiny_net
from wamdiff_ros.planners.wamdiff.graphs import GRAPHS, graph_module, graph_modules, random_inputs
from wamdiff_ros.planners.wamdiff.masked_diffusion import decode_block
from wamdiff_ros.runtime.export import export_onnx

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("routing", ["expert_choice", "token_choice", "none"])
def test_graphs_pass_checker_and_match_torch(tmp_path, routing):
    net = tiny_net(routing)
    paths = export_onnx(graph_modules(net), tmp_path)
    assert not net.training
    assert set(paths) == set(GRAPHS)
    g = torch.Generator().manual_seed(1)
    for name, path in paths.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        for inp in model.graph.input:
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            assert all(d > 0 for d in dims), (name, inp.name, dims)  # static shapes
        module, in_names, _ = graph_module(net, name)
        x = random_inputs(net, name)(g)
        with torch.no_grad():
            ref = module(*x)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {n: v.numpy() for n, v in zip(in_names, x)})
        for o, r in zip(out, ref):
            assert o.shape == tuple(r.shape)
            assert np.abs(o - r.numpy()).max() <= 1e-4, (name, np.abs(o - r.numpy()).max())


def test_fast_decode_through_onnxruntime_matches_torch(tmp_path):
    net = tiny_net("expert_choice")
    paths = export_onnx([g for g in graph_modules(net) if g.name in ("encode", "step_traj_fast")], tmp_path)
    enc = ort.InferenceSession(str(paths["encode"]), providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(str(paths["step_traj_fast"]), providers=["CPUExecutionProvider"])
    x = random_inputs(net, "encode")(torch.Generator().manual_seed(5))
    lay, mask = net.layout, net.space.text.mask_id
    allowed = torch.from_numpy(net.space.trajectory_allowed())
    ids0 = torch.full((1, lay.traj_len), mask)
    kv_ort = enc.run(None, {"images": x[0].numpy(), "ego": x[1].numpy(), "prompt": x[2].numpy()})[0]
    res_ort = decode_block(
        lambda ids: torch.from_numpy(step.run(None, {"prefix_kv": kv_ort, "ids": ids.numpy()})[0]),
        ids0,
        mask,
        4,
        allowed=allowed,
    )
    with torch.no_grad():
        kv, _, _ = net.encode(*x)
        res_torch = decode_block(lambda ids: net.step(kv, ids, lay.traj_offset)[0], ids0, mask, 4, allowed=allowed)
    assert torch.equal(res_ort.ids, res_torch.ids)
    torch.testing.assert_close(res_ort.confidences, res_torch.confidences, rtol=1e-4, atol=1e-5)
