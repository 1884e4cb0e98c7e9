"""Write calibrated fast/slow gate thresholds (:mod:`wamdiff_ros.training.gate_calibration`) into a
WAM-Diff checkpoint."""

from __future__ import annotations

import os


def apply_gate(checkpoint: str | os.PathLike, out: str | os.PathLike, theta: float, c_min: float, note: str = ""):
    """Write a copy of a WAM-Diff checkpoint into ``out`` with the gate's ``theta`` and ``c_min`` set
    (the weights are unchanged); ``note`` is recorded in the checkpoint's meta."""
    from wamdiff_ros.models.checkpoint import load_checkpoint
    from wamdiff_ros.planners.wamdiff.net import WamDiffNet

    doc, _ = load_checkpoint(checkpoint)
    net = WamDiffNet.load(checkpoint)
    net.cfg.gate.theta = float(theta)
    net.cfg.gate.c_min = float(c_min)
    net.cfg.gate.__post_init__()
    meta = {k: v for k, v in doc.get("meta", {}).items() if k not in ("parameters", "quantisation")}
    meta["gate_calibration"] = {"theta": float(theta), "c_min": float(c_min), "note": note}
    return net.save(out, meta)


__all__ = ["apply_gate"]
