"""Scorer labels: every vocabulary entry scored against a frame's scene, cached on disk and reused.

A label is a (V, M) float16 array: the scorer's sub-metrics (:data:`~.config.METRICS`, before the
EPDMS human filter) of each of the V vocabulary entries for one scene. Labels live under
``<root>/<vocabulary key>/<scene key>.npy`` where the vocabulary key hashes the vocabulary and the
metric list and the scene key (:func:`wamdiff_ros.scoring.scene_key`) hashes the scene content and
scorer config, so a label is valid wherever the same scene appears and stale ones are never read.
Files are plain ``.npy`` (read with ``allow_pickle=False``), written under a temporary name and renamed,
so an interrupted run leaves only complete labels and a rerun does only the missing frames.

:func:`label_frame` is a pure function of (dataset, frame, vocabulary, root). :func:`make_labels` runs it
over a dataset on :mod:`wamdiff_ros.distributed.fanout` workers: each task is a small
:class:`LabelJob` (the dataset's source, up to :data:`FRAMES_PER_JOB` frames, label folder); a worker opens
the dataset once and reads the vocabulary from the folder's ``vocabulary.npy``, written there by the
caller first. Several frames per task keep the driver's share of the CPU small (one frame is about
0.2 s of scoring; with one frame per task the driver used a sixth of a core on a 2-core machine).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wamdiff_ros.atomic import atomic_path
from wamdiff_ros.planners.trajmoe.config import METRICS

if TYPE_CHECKING:
    from wamdiff_ros.data.dataset import DatasetSource

LABEL_DTYPE = np.float16
VOCABULARY_FILE = "vocabulary.npy"
FRAMES_PER_JOB = 8
"""Frames labelled by one fan-out task."""


def default_label_root() -> Path:
    """``labels/`` beside the dataset cache: ``$WAMDIFF_CACHE/labels``, else ``~/.cache/wamdiff_ros/labels``."""
    from wamdiff_ros.data.dataset import default_cache_dir

    return default_cache_dir().parent / "labels"


def vocabulary_key(vocabulary: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(np.asarray(vocabulary, np.float32)).tobytes())
    h.update(",".join(METRICS).encode())
    return h.hexdigest()[:16]


def score_vocabulary(vocabulary: np.ndarray, scene) -> np.ndarray:
    """(V, M) sub-metrics of every entry of ``vocabulary`` (V, T, 3) against ``scene``."""
    from wamdiff_ros.scoring import score

    cols = score(np.asarray(vocabulary, np.float64), scene).columns()
    return np.stack([cols[m.upper()] for m in METRICS], -1).astype(LABEL_DTYPE)


class LabelStore:
    """Labels of one vocabulary under ``root`` (see the module docstring)."""

    def __init__(self, vocabulary: np.ndarray, root: str | os.PathLike | None = None):
        self.vocabulary = np.asarray(vocabulary, np.float64)
        if self.vocabulary.ndim != 3 or self.vocabulary.shape[2] != 3:
            raise ValueError(f"LabelStore.vocabulary: expected (V, T, 3), got {self.vocabulary.shape}")
        self.folder = Path(root or default_label_root()) / vocabulary_key(self.vocabulary)

    def save_vocabulary(self) -> Path:
        """Write the vocabulary into the label folder (what fan-out workers label against); returns it."""
        path = self.folder / VOCABULARY_FILE
        if not path.is_file():
            with atomic_path(path) as tmp:
                np.save(tmp, self.vocabulary, allow_pickle=False)
        return path

    def path(self, scene) -> Path:
        from wamdiff_ros.scoring import scene_key

        return self.folder / f"{scene_key(scene)}.npy"

    def read(self, scene) -> np.ndarray | None:
        """The stored label of ``scene`` (None when absent); ValueError for a file of the wrong shape."""
        path = self.path(scene)
        if not path.is_file():
            return None
        label = np.load(path, allow_pickle=False)
        expected = (len(self.vocabulary), len(METRICS))
        if label.shape != expected:
            raise ValueError(f"label {path}: expected shape {expected}, got {label.shape}; delete it")
        return label

    def get(self, scene) -> np.ndarray:
        """The label of ``scene``, scored and stored first when absent."""
        label = self.read(scene)
        if label is None:
            label = score_vocabulary(self.vocabulary, scene)
            with atomic_path(self.path(scene)) as tmp:
                np.save(tmp, label, allow_pickle=False)
        return label


def label_frame(dataset, index: int, vocabulary: np.ndarray, root: str | os.PathLike | None = None) -> bool:
    """Make sure frame ``index`` of ``dataset`` has its label under ``root``; True when it was scored now."""
    store = LabelStore(vocabulary, root)
    scene = dataset.scene(int(index))
    if store.read(scene) is not None:
        return False
    store.get(scene)
    return True


@dataclass(frozen=True)
class LabelJob:
    """Frames of a dataset to label (picklable, small): the dataset's ``source``
    (:class:`~wamdiff_ros.data.dataset.DatasetSource`), the sample indices ``frames`` and the label
    ``folder`` holding ``vocabulary.npy``."""

    source: DatasetSource
    frames: tuple[int, ...]
    folder: str


@lru_cache(maxsize=2)
def _read_vocabulary(folder: str) -> np.ndarray:
    return np.load(Path(folder) / VOCABULARY_FILE, allow_pickle=False)


def run_label_job(job: LabelJob) -> tuple[bool, ...]:
    """:func:`label_frame` of each frame of one :class:`LabelJob` (what a fan-out worker runs)."""
    dataset, vocab, root = job.source.open(), _read_vocabulary(job.folder), Path(job.folder).parent
    return tuple(label_frame(dataset, i, vocab, root) for i in job.frames)


def make_labels(
    dataset,
    vocabulary: np.ndarray,
    root: str | os.PathLike | None = None,
    frames: Iterable[int] | None = None,
    workers=None,
    progress: bool = False,
) -> dict:
    """Label ``frames`` of ``dataset`` (default all): in this process, or with ``workers``
    (:class:`~wamdiff_ros.distributed.fanout.Workers`) on the fan-out, whose tasks reopen ``dataset``
    from its bags (``dataset.source``). The folder's files are the same either way (the vocabulary
    is written there first in both). Returns counts ``{frames, scored, reused}`` and the label folder."""
    from wamdiff_ros.distributed import fanout

    frames = list(range(len(dataset))) if frames is None else [int(i) for i in frames]
    store = LabelStore(vocabulary, root)
    folder = str(store.folder)
    store.save_vocabulary()
    if workers is None or workers.in_process:
        done = [label_frame(dataset, i, vocabulary, root) for i in frames]
    else:
        chunks = [tuple(frames[i : i + FRAMES_PER_JOB]) for i in range(0, len(frames), FRAMES_PER_JOB)]
        jobs = [LabelJob(dataset.source, c, folder) for c in chunks]
        results = fanout.map_ordered(
            run_label_job, jobs, workers.at_most(len(jobs)), total=len(jobs), desc="label", progress=progress
        )
        done = [d for chunk in results for d in chunk]
    scored = int(sum(bool(d) for d in done))
    return {"frames": len(frames), "scored": scored, "reused": len(frames) - scored, "folder": folder}


__all__ = [
    "FRAMES_PER_JOB",
    "LABEL_DTYPE",
    "VOCABULARY_FILE",
    "LabelJob",
    "LabelStore",
    "default_label_root",
    "label_frame",
    "make_labels",
    "run_label_job",
    "score_vocabulary",
]
