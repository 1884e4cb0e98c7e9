"""The trajectory vocabulary: k-means clusters of logged futures, and how well it covers a split.

Futures (N, T, 3) are compared by their (x, y) waypoints (a 2T vector, so the squared distance is T
times the squared average displacement). Clustering is Lloyd's k-means from a k-means++ start drawn
from a seeded generator; an empty cluster is re-seeded with the point farthest from its centre. A
centre's heading is the circular mean of its members' headings. Entries are ordered most-populous
first, so a prefix of the vocabulary is a sensible smaller vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from wamdiff_ros.types import TrajectorySpec


def _flat(poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[2] != 3:
        raise ValueError(f"vocabulary: expected futures (N, T, 3), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError("vocabulary: futures must be finite")
    return poses[..., :2].reshape(len(poses), -1)


def squared_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances, in row chunks (bounded memory)."""
    bb = (b * b).sum(1)
    out = np.empty((len(a), len(b)))
    for s in range(0, len(a), chunk):
        x = a[s : s + chunk]
        out[s : s + chunk] = np.maximum((x * x).sum(1)[:, None] - 2.0 * x @ b.T + bb[None], 0.0)
    return out


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [int(rng.integers(len(x)))]
    d2 = ((x - x[centres[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(i)
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return x[centres].copy()


@dataclass(frozen=True)
class Clustering:
    """A fitted vocabulary: ``entries`` (K, T, 3) most-populous first, ``counts`` (K,) members each,
    ``inertia`` mean squared distance of a future to its centre [m²], ``iterations`` run."""

    entries: np.ndarray
    counts: np.ndarray
    inertia: float
    iterations: int


def cluster_futures(futures: np.ndarray, k: int, iterations: int = 25, seed: int = 0) -> Clustering:
    """k-means of ``futures`` (N, T, 3) into ``k`` vocabulary entries (see the module docstring)."""
    x = _flat(futures)
    if not 1 <= k <= len(x):
        raise ValueError(f"vocabulary: {k} entries need at least as many futures, got {len(x)}")
    rng = np.random.default_rng(seed)
    centres = _kmeans_pp(x, k, rng)
    assign = np.full(len(x), -1)
    run = 0
    while run < iterations:
        run += 1
        d2 = squared_distances(x, centres)
        new = d2.argmin(1)
        if np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        far = np.argsort(-d2[np.arange(len(x)), assign])
        for j, e in enumerate(np.flatnonzero(~filled)):
            centres[e] = x[far[j]]
    d2 = squared_distances(x, centres)
    assign = d2.argmin(1)
    counts = np.bincount(assign, minlength=k)
    yaw = np.asarray(futures, np.float64)[..., 2]
    sin = np.zeros((k, yaw.shape[1]))
    cos = np.zeros((k, yaw.shape[1]))
    np.add.at(sin, assign, np.sin(yaw))
    np.add.at(cos, assign, np.cos(yaw))
    xy = centres.reshape(k, yaw.shape[1], 2)
    heading = np.arctan2(sin, cos)
    order = np.argsort(-counts, kind="stable")
    entries = np.concatenate([xy, heading[..., None]], -1)[order]
    inertia = float(d2[np.arange(len(x)), assign].mean())
    return Clustering(entries, counts[order], inertia, run)


def mirrored(futures: np.ndarray) -> np.ndarray:
    """``futures`` followed by their left-right mirror images (y and yaw negated)."""
    f = np.asarray(futures, np.float64)
    return np.concatenate([f, f * np.array([1.0, -1.0, -1.0])])


VOCABULARY_DECIMALS = 4
"""Entries are rounded to 0.1 mm / 0.1 mrad: what the checkpoint's ``config.json`` stores, so a loaded
vocabulary equals the fitted one and both find the same labels."""


def fit_vocabulary(futures: np.ndarray, k: int, mirror: bool, iterations: int = 25, seed: int = 0) -> Clustering:
    """The vocabulary of a training split: k-means of its futures (with their mirror images when
    ``mirror``, which doubles the data and makes the vocabulary left-right symmetric in coverage),
    rounded to :data:`VOCABULARY_DECIMALS`."""
    fit = cluster_futures(mirrored(futures) if mirror else futures, k, iterations, seed)
    return replace(fit, entries=np.round(fit.entries, VOCABULARY_DECIMALS))


def coverage(vocabulary: np.ndarray, futures: np.ndarray, thresholds=(0.5, 1.0, 2.0)) -> dict:
    """How well ``vocabulary`` (K, T, 3) covers ``futures`` (N, T, 3): the mean and median over futures
    of the ADE [m] to the nearest entry (by the 2T-vector distance), and the fraction within each
    threshold [m]."""
    v = np.asarray(vocabulary, np.float64)
    f = np.asarray(futures, np.float64)
    nearest = squared_distances(_flat(f), _flat(v)).argmin(1)
    ade = np.linalg.norm(f[..., :2] - v[nearest, :, :2], axis=-1).mean(1)
    out = {"futures": len(f), "entries": len(v), "mean_ade_m": float(ade.mean()), "median_ade_m": float(np.median(ade))}
    out.update({f"within_{t:g}m": float((ade <= t).mean()) for t in thresholds})
    return out


def nearest_entry(vocabulary: np.ndarray, future: np.ndarray) -> int:
    """Index of the entry of ``vocabulary`` (K, T, 3) nearest ``future`` (T, 3)."""
    return int(squared_distances(_flat(np.asarray(future)[None]), _flat(vocabulary))[0].argmin())


def default_vocabulary(size: int, spec: TrajectorySpec) -> np.ndarray:
    """(size, T, 3) constant-turn paths on a grid of speeds (0–20 m/s) and yaw rates (±0.5 rad/s), for
    an untrained model (a trained one stores its clustered vocabulary); zero yaw rate is always in."""
    n_rate = max(1, int(np.sqrt(size / 2))) | 1  # odd: the straight path is in
    n_speed = -(-size // n_rate)
    speed, rate = np.meshgrid(np.linspace(0.0, 20.0, n_speed), np.linspace(-0.5, 0.5, n_rate), indexing="ij")
    speed, rate = speed.reshape(-1)[:size, None], rate.reshape(-1)[:size, None]
    t = spec.times[None]
    yaw = rate * t
    safe = np.where(np.abs(rate) < 1e-9, 1.0, rate)
    x = np.where(np.abs(rate) < 1e-9, speed * t, speed * np.sin(yaw) / safe)
    y = np.where(np.abs(rate) < 1e-9, 0.0, speed * (1.0 - np.cos(yaw)) / safe)
    return np.stack([x, y, yaw], -1)


__all__ = [
    "Clustering",
    "cluster_futures",
    "coverage",
    "default_vocabulary",
    "fit_vocabulary",
    "mirrored",
    "nearest_entry",
    "squared_distances",
]
