"""Shared fixtures of the training tests: a small synthetic bag on the tiny model's rig, with a plain
highway episode (no reasoning text) and a cut-in episode (reasoning text on every tick)."""

from __future__ import annotations

import dataclasses

from wamdiff_ros.data.bag import BagWriter
from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.data.synthetic import synthetic_frames, synthetic_images, synthetic_lanes
from wamdiff_ros.planners.wamdiff.config import tiny_config
from wamdiff_ros.sim.language import vocabulary


def tiny_cfg(**overrides):
    return tiny_config(vocab=vocabulary(), **overrides)


def write_tiny_bag(path, ticks: int = 52, speed: float = 8.0) -> object:
    """Two episodes of ``ticks`` ticks at 10 Hz (``ticks - 40`` samples each with a 4 s future) at
    ``speed`` m/s."""
    rig = tiny_cfg().rig_obj
    lanes = synthetic_lanes()
    with BagWriter(path, rig) as w:
        k = 0
        for episode, scenario in (("plain", "highway"), ("busy", "cut_in")):
            for i, frame in enumerate(synthetic_frames(episode, ticks, speed=speed)):
                w.write_tick(
                    dataclasses.replace(frame, scenario=scenario), synthetic_images(rig, k), lanes if i == 0 else None
                )
                k += 1
    return w.bag_dir


def tiny_dataset(bag, cfg=None) -> DrivingDataset:
    cfg = cfg or tiny_cfg()
    return DrivingDataset(
        [bag], spec=cfg.spec, history=cfg.encoder.history, cache_dir=None, rig=cfg.rig_obj, scenes=False
    )
