"""Shared fixtures of the runtime tests: a tiny WAM-Diff network whose MoE routing and BatchNorm
statistics are far from their initial values (so every graph path matters), and observations."""

import numpy as np
import torch

from wamdiff_ros.planners.base import planner_hash
from wamdiff_ros.planners.wamdiff import WamDiffPlanner
from wamdiff_ros.planners.wamdiff.config import tiny_config
from wamdiff_ros.planners.wamdiff.net import WamDiffNet
from wamdiff_ros.runtime import export
from wamdiff_ros.types import EgoState, Observation


def tiny_net(routing: str = "expert_choice", seed: int = 0) -> WamDiffNet:
    torch.manual_seed(seed)
    net = WamDiffNet(tiny_config(routing)).eval()
    with torch.no_grad():
        for blk in net.transformer.blocks:
            if blk.moe is not None:
                torch.nn.init.normal_(blk.moe.lora_b, std=0.2)
                torch.nn.init.normal_(blk.moe.router.weight, std=1.0)
        for m in net.encoder.cnn:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def net_hash(net: WamDiffNet) -> str:
    """The model hash the runtime keys exports of ``net`` by."""
    return planner_hash(WamDiffPlanner(net))


def ensure_export(net: WamDiffNet, out, source: str = "", **kw):
    """:func:`wamdiff_ros.runtime.export.ensure_export` of every graph of ``net``."""
    planner = WamDiffPlanner(net, source=source)
    return export.ensure_export(planner.graphs(), out, net_hash(net), "wamdiff", source, **kw)


def graphs_by_name(net: WamDiffNet) -> dict:
    """``{name: GraphModule}`` of every graph of ``net``."""
    return {g.name: g for g in WamDiffPlanner(net).graphs()}


def observation(rig, seed: int = 0, command: str = "straight") -> Observation:
    rng = np.random.default_rng(seed)
    images = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    return Observation(
        images=images,
        ego=EgoState(pose=[0.0, 0.0, 0.0], velocity=[float(rng.uniform(0, 20)), 0.0]),
        stamp_ns=(1 + seed) * 1_000_000_000,
        command=command,
        instruction="slow down the lead car brakes",
        ego_history=np.stack([np.linspace(-6, -1.5, 4), np.zeros(4), np.zeros(4)], 1),
    )
