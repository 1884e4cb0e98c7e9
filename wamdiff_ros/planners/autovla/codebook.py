"""Action codebook: 0.5 s motion primitives (Δx, Δy, Δθ) found by K-disk clustering on vehicle-box corners.

A primitive is the ego pose one trajectory step later, expressed in the pose before it. Two primitives
are within ``tolerance`` when every corner of the vehicle box placed at one lies within ``tolerance`` of
the same corner placed at the other (the max-corner distance). K-disk clustering (AutoVLA, after
SMART / CAT-K): token 0 is the no-motion primitive; then, in a seeded random order, the first primitive
not yet within ``tolerance`` of a chosen one is chosen, until ``size`` tokens are chosen or every
primitive is covered.

A trajectory is composed token by token: pose_{t+1} = pose_t ⊕ primitive[token_t]. Tokenising a logged
trajectory chooses, step by step, the token whose composed pose is closest (corner distance) to the
logged pose, starting from the poses already composed, so quantisation errors do not accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import box_corners, compose, prepend_origin, relative, wrap_angle


@dataclass(frozen=True)
class Box:
    """Vehicle box the corner distance is measured on: ``length`` × ``width`` [m], centred on the pose."""

    length: float = 4.8
    width: float = 2.0


def primitives_of(poses: np.ndarray) -> np.ndarray:
    """(..., T, 3) poses from the origin (base_link) -> (..., T, 3) step primitives (each pose in the
    frame of the one before it; the first in the origin's)."""
    full = prepend_origin(np.asarray(poses, np.float64))
    return relative(full[..., :-1, :], full[..., 1:, :])


def corner_distance(a: np.ndarray, b: np.ndarray, box: Box) -> np.ndarray:
    """Max over the 4 box corners of the distance between poses ``a`` and ``b`` (broadcast) [m]."""
    ca, cb = box_corners(a, box.length, box.width), box_corners(b, box.length, box.width)
    return np.linalg.norm(ca - cb, axis=-1).max(-1)


def k_disk(primitives: np.ndarray, size: int, tolerance: float, box: Box, seed: int = 0) -> np.ndarray:
    """(N, 3) primitives -> (K ≤ size, 3) codebook, row 0 the no-motion primitive (see the module docstring)."""
    prims = np.asarray(primitives, np.float64).reshape(-1, 3)
    if size < 1 or not tolerance > 0:
        raise ValueError(f"k_disk: expected size >= 1 and tolerance > 0, got size={size}, tolerance={tolerance}")
    if not np.isfinite(prims).all():
        raise ValueError("k_disk: primitives must be finite")
    corners = box_corners(prims, box.length, box.width)
    order = np.random.default_rng(seed).permutation(len(prims))
    corners = corners[order]
    chosen = [np.zeros(3)]
    left = np.linalg.norm(corners - box_corners(chosen[0], box.length, box.width), axis=-1).max(-1) > tolerance
    while len(chosen) < size and left.any():
        i = int(np.argmax(left))
        chosen.append(prims[order[i]])
        left &= np.linalg.norm(corners - corners[i], axis=-1).max(-1) > tolerance
    return np.stack(chosen)


class ActionCodebook:
    """K motion primitives of ``dt`` seconds each; token ids 0…K−1 (0 = no motion)."""

    def __init__(self, primitives: np.ndarray, box: Box = Box()):
        prims = np.asarray(primitives, np.float64)
        if prims.ndim != 2 or prims.shape[1] != 3 or len(prims) < 1 or not np.isfinite(prims).all():
            raise ValueError(f"ActionCodebook.primitives: expected finite (K, 3) with K >= 1, got {prims.shape}")
        self.primitives = prims
        self.box = box

    def __len__(self) -> int:
        return len(self.primitives)

    @classmethod
    def fit(
        cls, trajectories: np.ndarray, size: int, tolerance: float, box: Box = Box(), seed: int = 0
    ) -> ActionCodebook:
        """K-disk codebook of the step primitives of (N, T, 3) logged trajectories."""
        return cls(k_disk(primitives_of(trajectories), size, tolerance, box, seed), box)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(..., T) token ids -> (..., T, 3) poses in base_link, composed step by step."""
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self)):
            raise ValueError(
                f"ActionCodebook.decode: token ids must be in [0, {len(self)}), got {tokens.min()}…{tokens.max()}"
            )
        prims = self.primitives[tokens]
        yaw = np.cumsum(prims[..., 2], -1)
        before = yaw - prims[..., 2]  # heading in which each step is taken
        c, s = np.cos(before), np.sin(before)
        x = np.cumsum(c * prims[..., 0] - s * prims[..., 1], -1)
        y = np.cumsum(s * prims[..., 0] + c * prims[..., 1], -1)
        return np.stack([x, y, wrap_angle(yaw)], -1)

    def encode(self, trajectories: np.ndarray) -> np.ndarray:
        """(..., T, 3) poses in base_link -> (..., T) token ids, greedy with the composed pose fed back."""
        traj = np.asarray(trajectories, np.float64)
        if traj.ndim < 2 or traj.shape[-1] != 3 or not np.isfinite(traj).all():
            raise ValueError(f"ActionCodebook.encode: expected finite (..., T, 3) poses, got {traj.shape}")
        lead = traj.shape[:-2]
        flat = traj.reshape(-1, traj.shape[-2], 3)
        pose = np.zeros((len(flat), 3))
        tokens = np.zeros(flat.shape[:2], np.int64)
        target_corners = box_corners(flat, self.box.length, self.box.width)
        for t in range(flat.shape[1]):
            cand = compose(pose[:, None, :], self.primitives[None])
            cc = box_corners(cand, self.box.length, self.box.width)
            d = np.linalg.norm(cc - target_corners[:, t, None], axis=-1).max(-1)
            tokens[:, t] = d.argmin(-1)
            pose = cand[np.arange(len(flat)), tokens[:, t]]
        return tokens.reshape(*lead, flat.shape[1])

    def reconstruction_error(self, trajectories: np.ndarray) -> dict[str, float]:
        """Position errors [m] of (N, T, 3) trajectories round-tripped through the codebook: mean and max
        per-pose displacement, mean final displacement, max corner distance."""
        traj = np.asarray(trajectories, np.float64)
        rec = self.decode(self.encode(traj))
        d = np.linalg.norm(rec[..., :2] - traj[..., :2], axis=-1)
        return {
            "ade_m": float(d.mean()),
            "fde_m": float(d[..., -1].mean()),
            "max_m": float(d.max()),
            "max_corner_m": float(corner_distance(rec, traj, self.box).max()),
            "trajectories": len(traj),
        }


__all__ = ["ActionCodebook", "Box", "corner_distance", "k_disk", "primitives_of"]
