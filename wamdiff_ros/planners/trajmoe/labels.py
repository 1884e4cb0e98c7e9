"""Scorer labels: every vocabulary entry scored against a frame's scene, cached on disk and reused.

A label is a (V, M) float16 array: the scorer's sub-metrics (:data:`~.config.METRICS`, before the
EPDMS human filter) of each of the V vocabulary entries for one scene. Labels live under
``<root>/<vocabulary key>/<scene key>.npy`` where the vocabulary key hashes the vocabulary and the
metric list and the scene key (:func:`wamdiff_ros.scoring.scene_key`) hashes the scene content and
scorer config, so a label is valid wherever the same scene appears and stale ones are never read.
Files are plain ``.npy`` (read with ``allow_pickle=False``), written under a temporary name and renamed,
so an interrupted run leaves only complete labels and a rerun does only the missing frames.

:func:`label_frame` is a pure function of (dataset, frame, vocabulary, root): it is what a fan-out
runs per frame; :func:`make_labels` runs it over a dataset with any ``map``-like executor.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import numpy as np

from wamdiff_ros.atomic import atomic_path
from wamdiff_ros.planners.trajmoe.config import METRICS

LABEL_DTYPE = np.float16


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


def make_labels(
    dataset,
    vocabulary: np.ndarray,
    root: str | os.PathLike | None = None,
    frames: Iterable[int] | None = None,
    mapper: Callable = map,
) -> dict:
    """Label ``frames`` of ``dataset`` (default all) with :func:`label_frame` through ``mapper`` (``map``:
    in-process; a fan-out's map runs them on workers). Returns counts ``{frames, scored, reused}`` and
    the label folder."""
    frames = list(range(len(dataset))) if frames is None else [int(i) for i in frames]
    done = list(mapper(partial(label_frame, dataset, vocabulary=vocabulary, root=root), frames))
    scored = int(sum(bool(d) for d in done))
    folder = LabelStore(vocabulary, root).folder
    return {"frames": len(frames), "scored": scored, "reused": len(frames) - scored, "folder": str(folder)}


__all__ = ["LABEL_DTYPE", "LabelStore", "default_label_root", "label_frame", "make_labels", "score_vocabulary"]
