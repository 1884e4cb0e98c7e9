"""Trajectory anchors: k-means over logged futures in normalised coordinates (x/50, y/20), and how
well a set of anchors covers a split (each trajectory's distance to its nearest anchor)."""

from __future__ import annotations

import numpy as np

SCALE = np.array([50.0, 20.0])
"""Divisors of (x, y) [m] into the network's normalised trajectory space (DiffusionDrive)."""


def normalise(xy: np.ndarray) -> np.ndarray:
    """(..., T, 2) metres -> normalised."""
    return np.asarray(xy, np.float64) / SCALE


def denormalise(u: np.ndarray) -> np.ndarray:
    """(..., T, 2) normalised -> metres."""
    return np.asarray(u, np.float64) * SCALE


def kmeans(points: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding: (N, D) points -> (k, D) centres (sorted by the first
    coordinate, so anchor order is reproducible). An empty cluster is re-seeded at the point farthest
    from its centre. ValueError when there are fewer distinct points than ``k``."""
    x = np.asarray(points, np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"kmeans: expected finite (N, D) points, got shape {x.shape}")
    if k < 1 or len(np.unique(x, axis=0)) < k:
        raise ValueError(f"kmeans: need at least k = {k} distinct points, got {len(np.unique(x, axis=0))}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.array(centres)[None]) ** 2).sum(-1).min(1)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    c = np.array(centres)
    for _ in range(iters):
        d2 = ((x[:, None] - c[None]) ** 2).sum(-1)
        label = d2.argmin(1)
        new = c.copy()
        for j in range(k):
            members = x[label == j]
            new[j] = members.mean(0) if len(members) else x[d2.min(1).argmax()]
        if np.allclose(new, c):
            break
        c = new
    return c[np.argsort(c[:, 0], kind="stable")]


def fit_anchors(futures: np.ndarray, k: int = 20, seed: int = 0) -> np.ndarray:
    """(N, T, ≥2) logged futures [m] -> (k, T, 2) anchors [m]."""
    f = np.asarray(futures, np.float64)[..., :2]
    centres = kmeans(normalise(f).reshape(len(f), -1), k, seed=seed)
    return denormalise(centres.reshape(k, f.shape[1], 2))


def coverage(anchors: np.ndarray, futures: np.ndarray) -> dict[str, float]:
    """Distance [m] from each future (N, T, ≥2) to its nearest anchor (K, T, 2), as the mean
    displacement over the horizon (ADE) and at the last pose (FDE): mean, p50 and p90 of each."""
    f = np.asarray(futures, np.float64)[:, None, :, :2]
    d = np.linalg.norm(f - np.asarray(anchors, np.float64)[None], axis=-1)
    best = d.mean(-1).argmin(1)
    ade = d.mean(-1)[np.arange(len(f)), best]
    fde = d[np.arange(len(f)), best, -1]
    out = {"frames": float(len(f))}
    for name, v in (("ade", ade), ("fde", fde)):
        out.update(
            {
                f"{name}_mean": float(v.mean()),
                f"{name}_p50": float(np.median(v)),
                f"{name}_p90": float(np.percentile(v, 90)),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m wamdiff_ros.planners.diffusiondrive.anchors --model M --data BAG…``: print how well the
    model's anchors cover the logged futures of the bags (JSON)."""
    import argparse
    import json

    from wamdiff_ros.data.dataset import DrivingDataset
    from wamdiff_ros.models.checkpoint import read_config
    from wamdiff_ros.planners.diffusiondrive.config import ModelConfig
    from wamdiff_ros.planners.diffusiondrive.task import logged_futures

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", required=True, help="diffusiondrive checkpoint folder")
    parser.add_argument("--data", nargs="+", required=True, help="bags whose futures are covered")
    args = parser.parse_args(argv)
    cfg = ModelConfig.from_dict(read_config(args.model)["config"], f"checkpoint {args.model}")
    ds = DrivingDataset(args.data, spec=cfg.spec, history=0, rig=cfg.rig_obj, scenes=False)
    print(json.dumps({"anchors": cfg.num_anchors, **coverage(cfg.anchor_array, logged_futures(ds))}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SCALE", "coverage", "denormalise", "fit_anchors", "kmeans", "normalise"]
