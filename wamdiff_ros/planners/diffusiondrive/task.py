"""Supervised objective of the DiffusionDrive family (for the shared training loop).

``prepare`` fits the K anchors by k-means on the training split's logged futures (stored in the
checkpoint config). Each sample: the anchors are noised to a timestep t ∈ [0, train_t_max); the
network predicts every anchor's clean trajectory and a logit; the anchor nearest the logged future
(mean distance in metres) is the positive: L1 [m] between its prediction and the logged future plus
cross-entropy of the logits on it. The L1 is in metres, not in the network's normalised units (x/50,
y/20): there it was 20-50 times smaller than the metres it measures, the cross-entropy outweighed it,
and x errors counted 2.5 times less than y errors. With ``selector_weight`` > 0 the selector heads
learn the scorer's PDMS (binary cross-entropy, soft labels) of K jittered anchors and the logged future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wamdiff_ros.models.encoder import batch_images, ego_features
from wamdiff_ros.planners.diffusiondrive.anchors import SCALE, coverage, fit_anchors
from wamdiff_ros.training.task import DataNeeds


@dataclass
class TaskSettings:
    """Weights of the loss parts and the selector's candidate jitter.

    Attributes:
        reg_weight: L1 [m] of the positive anchor's prediction.
        cls_weight: cross-entropy of the anchor logits.
        selector_weight: BCE of the coarse and fine heads on scorer PDMS labels (0: selector untrained,
            and samples need no scenes).
        jitter: relative scale of the multiplicative per-axis noise on the anchors scored as selector
            candidates.
        seed: k-means seed.
    """

    reg_weight: float = 1.0
    cls_weight: float = 0.1
    selector_weight: float = 0.1
    jitter: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if min(self.reg_weight, self.cls_weight, self.selector_weight, self.jitter) < 0:
            raise ValueError(f"diffusiondrive task settings: weights and jitter must be >= 0, got {self}")


def logged_futures(dataset) -> np.ndarray:
    """(N, T, 3) logged futures of every sample of a :class:`~wamdiff_ros.data.dataset.DrivingDataset`
    (no image decoding, no scenes)."""
    return np.stack([dataset.bags[b].target(k, dataset.spec)[0] for b, k in dataset.index])


class DiffusionDriveTask:
    """:class:`~wamdiff_ros.training.task.SupervisedTask` of a
    :class:`~wamdiff_ros.planners.diffusiondrive.planner.DiffusionDrivePlanner` (see the module docstring)."""

    def __init__(self, planner, **settings):
        self.planner = planner
        self.net = planner.network()
        self.settings = TaskSettings(**settings)
        if self.settings.selector_weight > 0:
            self.net.cfg.selector.trained = True

    def data_needs(self) -> DataNeeds:
        return DataNeeds(
            self.planner.rig,
            self.planner.spec,
            self.planner.history,
            scenes=self.settings.selector_weight > 0,
            past_frame_s=self.planner.past_frame_s,
        )

    def prepare(self, train_set) -> dict:
        futures = logged_futures(train_set)
        anchors = fit_anchors(futures, self.planner.cfg.num_anchors, self.settings.seed)
        self.net.set_anchors(anchors)
        return {"anchors": len(anchors), "train_coverage": coverage(anchors, futures)}

    def collate(self, samples: list, rngs: list[np.random.Generator]) -> dict:
        p = self.planner
        cfg = p.cfg
        k, tp = cfg.num_anchors, cfg.spec.num_poses
        anchors = p.anchors.numpy()
        batch: dict = {
            "images": batch_images(samples, p.rig.names, cfg.encoder.frames),
            "ego": torch.from_numpy(np.stack([ego_features(s.ego, s.ego_history, p.history) for s in samples])),
            "target": torch.from_numpy(np.stack([s.future[:, :2] / SCALE for s in samples])).float(),
            "t": torch.tensor([int(r.integers(cfg.diffusion.train_t_max)) for r in rngs]),
            "noise": torch.from_numpy(np.stack([r.standard_normal((k, tp, 2)) for r in rngs])).float(),
        }
        if self.settings.selector_weight > 0:
            from wamdiff_ros.scoring import score

            cands, labels = [], []
            for s, r in zip(samples, rngs):
                jit = anchors * (1.0 + self.settings.jitter * r.standard_normal((k, 1, 2)))
                c = np.concatenate([jit, (s.future[:, :2] / SCALE)[None]])
                labels.append(score(p.poses(c), s.scene).columns()["PDMS"])
                cands.append(c)
            batch["cands"] = torch.from_numpy(np.stack(cands)).float()
            batch["labels"] = torch.from_numpy(np.stack(labels)).float()
        return batch

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_on_scene(self.net.encode(batch["images"], batch["ego"]), batch)

    def loss_on_scene(self, scene: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """:meth:`loss` given the batch's scene tokens (B, S, d) (e.g. cached from a frozen encoder)."""
        net, p, st = self.net, self.planner, self.settings
        a = p.anchors[None].expand(len(scene), -1, -1, -1)
        x_t = p.scheduler.add_noise(a, batch["noise"], batch["t"])
        x0, logits = net.denoise(scene, x_t, batch["t"].float())
        scale = torch.from_numpy(SCALE).float()
        dist = ((a - batch["target"][:, None]) * scale).norm(dim=-1).mean(-1)
        pos = dist.argmin(1)
        rows = torch.arange(len(pos))
        reg = ((x0[rows, pos] - batch["target"]) * scale).abs().mean()
        cls = F.cross_entropy(logits, pos)
        loss = st.reg_weight * reg + st.cls_weight * cls
        parts = {"reg_l1": float(reg.detach()), "cls_ce": float(cls.detach())}
        if "cands" in batch:
            sel = F.binary_cross_entropy_with_logits(net.coarse_scores(scene, batch["cands"]), batch["labels"])
            sel = sel + F.binary_cross_entropy_with_logits(net.fine_scores(scene, batch["cands"]), batch["labels"])
            loss = loss + st.selector_weight * sel
            parts["selector_bce"] = float(sel.detach())
        parts["anchor_acc"] = float((logits.argmax(1) == pos).float().mean())
        return loss, parts

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())


__all__ = ["DiffusionDriveTask", "TaskSettings", "logged_futures"]
