"""Supervised training of a TrajMoE network on scorer labels (GTRS's objective).

:meth:`TrajMoETask.prepare` clusters the training futures into the vocabulary (stored in the
checkpoint config) and reports its coverage. Each sample keeps a random ``1 - vocab_dropout`` share of
the vocabulary (always with the entry nearest its logged future); the loss is

``Σ_m w_m BCE(ℓ_m, label_m) + w_im CE(ℓ_im, softmax(-ADE / temperature)) + β Σ_layers CV²(I) + CV²(L)``

with the labels read from the :class:`~.labels.LabelStore` (scored on first use when ``wamdiff label``
did not make them beforehand).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from wamdiff_ros.models.encoder import batch_images, ego_features
from wamdiff_ros.planners.trajmoe.config import METRICS
from wamdiff_ros.planners.trajmoe.labels import LabelStore
from wamdiff_ros.planners.trajmoe.vocabulary import coverage, fit_vocabulary
from wamdiff_ros.training.task import DataNeeds


def dataset_futures(dataset) -> np.ndarray:
    """(N, T, 3) logged futures of every sample of ``dataset`` (a DrivingDataset reads its cached
    targets without images)."""
    if hasattr(dataset, "bags") and hasattr(dataset, "index"):
        return np.stack([dataset.bags[b].target(k, dataset.spec)[0] for b, k in dataset.index])
    return np.stack([dataset[i].future for i in range(len(dataset))])


class TrajMoETask:
    """:class:`~wamdiff_ros.training.task.SupervisedTask` of a TrajMoE planner.

    Args:
        planner: the :class:`~.planner.TrajMoEPlanner` whose network is trained.
        label_root: where the labels live (default beside the dataset cache).
        kmeans_iterations, seed: vocabulary clustering.
    """

    def __init__(
        self, planner, label_root: str | os.PathLike | None = None, kmeans_iterations: int = 25, seed: int = 0
    ):
        self.planner = planner
        self.net = planner.network()
        self.cfg = self.net.cfg
        self.label_root = label_root
        self.kmeans_iterations = int(kmeans_iterations)
        self.seed = int(seed)
        self._store: LabelStore | None = None
        self._weights = torch.tensor([self.cfg.scoring.weight(m) for m in METRICS])

    def data_needs(self) -> DataNeeds:
        enc = self.cfg.encoder
        return DataNeeds(self.cfg.rig_obj, self.cfg.spec, enc.history, scenes=True, past_frame_s=enc.past_frame_s)

    @property
    def store(self) -> LabelStore:
        if self._store is None:
            self._store = LabelStore(self.net.vocabulary.double().numpy(), self.label_root)
        return self._store

    def prepare(self, train_set) -> dict:
        futures = dataset_futures(train_set)
        fit = fit_vocabulary(futures, self.cfg.vocab_size, self.cfg.mirror_futures, self.kmeans_iterations, self.seed)
        self.net.set_vocabulary(fit.entries)
        self._store = None
        return {
            "vocabulary": {"entries": len(fit.entries), "iterations": fit.iterations, "inertia_m2": fit.inertia},
            "train_coverage": coverage(fit.entries, futures),
            "labels": str(self.store.folder),
        }

    def collate(self, samples: list, rngs: list[np.random.Generator]) -> dict:
        vocab = self.net.vocabulary.double().numpy()
        v = len(vocab)
        keep = max(1, round(v * (1.0 - self.cfg.scoring.vocab_dropout)))
        hist = self.cfg.encoder.history
        entries, labels, targets = [], [], []
        for s, rng in zip(samples, rngs):
            if s.scene is None:
                raise ValueError("trajmoe collate: samples need their scene (DataNeeds.scenes)")
            ade = np.linalg.norm(vocab[..., :2] - s.future[None, :, :2], axis=-1).mean(1)
            nearest = int(ade.argmin())
            pick = rng.choice(v, keep, replace=False) if keep < v else np.arange(v)
            if nearest not in pick:
                pick[0] = nearest
            entries.append(pick)
            labels.append(self.store.get(s.scene)[pick].astype(np.float32))
            logits = -ade[pick] / self.cfg.scoring.imitation_temperature
            targets.append(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
        names = self.cfg.rig_obj.names
        return {
            "images": batch_images(samples, names, self.cfg.encoder.frames),
            "ego": torch.from_numpy(np.stack([ego_features(s.ego, s.ego_history, hist) for s in samples])),
            "entries": torch.from_numpy(np.stack(entries).astype(np.int64)),
            "labels": torch.from_numpy(np.stack(labels)),
            "imitation": torch.from_numpy(np.stack(targets).astype(np.float32)),
        }

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits, _, imitation, auxes = self.net(batch["images"], batch["ego"], batch["entries"])
        bce = F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none").mean((0, 1))
        score_loss = (bce * self._weights).sum()
        im_loss = -(batch["imitation"] * F.log_softmax(imitation, -1)).sum(-1).mean()
        balance = sum((a["balance_loss"] for a in auxes if "balance_loss" in a), torch.zeros(()))
        total = score_loss + self.cfg.scoring.imitation * im_loss + self.cfg.moe.balance_weight * balance
        parts = {
            "score": float(score_loss.detach()),
            "imitation": float(im_loss.detach()),
            "balance": float(balance.detach()),
        }
        parts.update({f"bce_{m}": float(b) for m, b in zip(METRICS, bce.detach())})
        return total, parts

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]


__all__ = ["TrajMoETask", "dataset_futures"]
