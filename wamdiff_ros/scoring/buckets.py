"""Bounding boxes bucketed on a coarse square grid: which items (lane quads, route segments) can contain
or lie near a query point, so that exact geometry runs on a handful of items per point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Buckets:
    """Items listed per grid bucket.

    Attributes:
        origin: (2,) map coordinates of the grid's lower-left corner [m].
        size: bucket edge [m].
        shape: (rows, cols) of buckets.
        start: (rows·cols + 1,) offsets into ``item`` of each bucket's list.
        item: (E,) item index of every (bucket, item) pair whose box overlaps the bucket.
    """

    origin: np.ndarray
    size: float
    shape: tuple[int, int]
    start: np.ndarray
    item: np.ndarray

    def pairs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, item)``, (E',) each: every point (P, 2) paired with every item of its bucket, grouped
        by point in ascending order. Points outside the grid get none."""
        rows, cols = self.shape
        ij = np.floor((points - self.origin) / self.size).astype(np.int64)
        inside = (ij >= 0).all(-1) & (ij[:, 0] < cols) & (ij[:, 1] < rows)
        bucket = np.clip(ij[:, 1], 0, rows - 1) * cols + np.clip(ij[:, 0], 0, cols - 1)
        count = np.where(inside, self.start[bucket + 1] - self.start[bucket], 0)
        owner = np.repeat(np.arange(len(points)), count)
        offset = np.repeat(self.start[bucket] - np.cumsum(count) + count, count) + np.arange(len(owner))
        return owner, self.item[offset]


def bucket_boxes(box_lo: np.ndarray, box_hi: np.ndarray, lo: np.ndarray, hi: np.ndarray, size: float) -> Buckets:
    """Bucket item boxes ``box_lo``..``box_hi`` (N, 2) [m] that overlap the window ``lo``..``hi`` (2,) on a
    grid of ``size`` [m]; an item spans every bucket its box overlaps."""
    if not size > 0:
        raise ValueError(f"bucket_boxes: size must be > 0 m, got {size}")
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    cols, rows = (np.floor((hi - lo) / size).astype(int) + 1).tolist()
    keep = np.flatnonzero((box_hi >= lo).all(-1) & (box_lo <= hi).all(-1))
    top = [cols - 1, rows - 1]
    c0 = np.clip(np.floor((box_lo[keep] - lo) / size).astype(np.int64), 0, top)
    c1 = np.clip(np.floor((box_hi[keep] - lo) / size).astype(np.int64), 0, top)
    extent = c1 - c0 + 1
    n = extent.prod(-1)
    k = np.repeat(np.arange(len(keep)), n)
    local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    bucket = (c0[k, 1] + local // extent[k, 0]) * cols + c0[k, 0] + local % extent[k, 0]
    order = np.argsort(bucket, kind="stable")
    start = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=rows * cols))])
    return Buckets(lo, float(size), (rows, cols), start, keep[k[order]])
