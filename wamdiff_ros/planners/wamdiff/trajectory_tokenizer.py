"""Trajectory tokenizer: base_link waypoints <-> discrete x / y bin tokens.

WAM-Diff writes a plan as 16 numbers (x, y of 8 waypoints, interleaved); here each number is one
token, a bin index of its axis, so a plan is 16 tokens ``x0 y0 x1 y1 …``.

Quantisation error: a value inside ``[lo, hi]`` is replaced by its bin's centre, so its error is at
most half that bin's width; values outside are clamped to the edge bins (their error is the distance
to the range plus half a bin). Zero is exact: where 0 is an edge between two bins (an even bin count
on a symmetric range, both default axes), those two bins decode to 0, not to ±half a bin, so the
commonest plans, straight ahead and standing still, carry no offset. With the centres, every
straight plan decoded 3.4 cm to one side, and a tracking controller turned that into a steady drift
across the lanes in closed loop. The price is an error of up to a whole bin (not half) for values in
those two bins. With the default config (see :class:`TrajectoryTokensConfig`):

- x: uniform 0.2 m bins over [-5, 130] m (675 tokens) → max error 0.10 m, 0.2 m within 0.2 m of 0.
- y: asinh-companded bins over [-30, 30] m (200 tokens, scale 2 m) → 0 exact, max error 0.068 m
  within 0.068 m of 0, 0.07 m at ±3.5 m (one lane), 0.17 m at ±10 m, 0.51 m at ±30 m.

Why non-uniform in y: lateral offsets of lane following and lane changes stay within a few metres,
where lane keeping (NAVSIM LK: 0.5 m) and collision margins are decided; large offsets only occur in
turns, where the path curves away and a coarser far lateral is harmless. A uniform y with the same 200
tokens would give 0.15 m everywhere. x stays uniform because comfort metrics difference consecutive
waypoints, and a uniform absolute error keeps that difference noise bounded at every speed.

Yaw is not tokenised: it is derived from the path (see :func:`wamdiff_ros.geometry.path_yaw`).

With ``prior: constant_velocity`` the binned numbers are the waypoints' offsets from the arc the ego
would drive holding its current twist (speed and yaw rate), so the same bins spend their resolution on
the correction, not the extrapolation: the ranges above then bound the offsets, not the waypoints.
"""

from __future__ import annotations

import numpy as np

from wamdiff_ros.geometry import path_yaw
from wamdiff_ros.planners.wamdiff.config import AxisBinsConfig, TrajectoryTokensConfig
from wamdiff_ros.planning.motion import constant_twist_path
from wamdiff_ros.types import EgoState, TrajectorySpec

ZERO_EDGE_TOLERANCE = 1e-9
"""An interior edge this close to 0 [m] is taken as 0 (see the module docstring: zero is exact)."""


class AxisBinning:
    """Bins of one axis: ``encode(values) -> indices``, ``decode(indices) -> values`` (bin centres, and
    0 for the two bins that meet at 0)."""

    def __init__(self, cfg: AxisBinsConfig):
        self.cfg = cfg
        u_lo, u_hi = self._fwd(np.array([cfg.lo, cfg.hi]))
        self.edges = self._inv(np.linspace(u_lo, u_hi, cfg.bins + 1))
        self.edges[0], self.edges[-1] = cfg.lo, cfg.hi
        self.centers = 0.5 * (self.edges[:-1] + self.edges[1:])
        self.widths = np.diff(self.edges)
        self.values = self.centers.copy()
        zero = np.flatnonzero(np.abs(self.edges[1:-1]) <= ZERO_EDGE_TOLERANCE)
        if len(zero):
            self.edges[zero[0] + 1] = 0.0
            self.values[zero[0] : zero[0] + 2] = 0.0
        self._errors = np.maximum(np.abs(self.edges[:-1] - self.values), np.abs(self.edges[1:] - self.values))

    def _fwd(self, v: np.ndarray) -> np.ndarray:
        return np.arcsinh(v / self.cfg.scale) if self.cfg.scale > 0 else np.asarray(v, np.float64)

    def _inv(self, u: np.ndarray) -> np.ndarray:
        return np.sinh(u) * self.cfg.scale if self.cfg.scale > 0 else np.asarray(u, np.float64)

    @property
    def size(self) -> int:
        return self.cfg.bins

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value (int64, same shape); values outside [lo, hi] are clamped."""
        v = np.clip(np.asarray(values, np.float64), self.cfg.lo, self.cfg.hi)
        return np.clip(np.searchsorted(self.edges, v, side="right") - 1, 0, self.cfg.bins - 1).astype(np.int64)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.cfg.bins):
            raise ValueError(f"bin indices: expected 0…{self.cfg.bins - 1}, got {idx.min()}…{idx.max()}")
        return self.values[idx]

    def max_error(self, values: np.ndarray | float | None = None) -> np.ndarray | float:
        """Worst-case quantisation error [m] in the bin of each of ``values`` (over the range if None):
        half its width, the whole width for the two bins that decode to 0."""
        if values is None:
            return float(self._errors.max())
        return self._errors[self.encode(values)]


class TrajectoryTokenizer:
    """Waypoints (T, ≥2) in base_link <-> (2T,) bin indices ``x0 y0 x1 y1 …``.

    Indices are local to each axis (x in ``0…nx-1``, y in ``0…ny-1``); the joint token space
    (:class:`wamdiff_ros.planners.wamdiff.layout.TokenSpace`) offsets them.
    """

    def __init__(self, cfg: TrajectoryTokensConfig | None = None, spec: TrajectorySpec | None = None):
        self.cfg = cfg or TrajectoryTokensConfig()
        self.spec = spec or TrajectorySpec()
        self.x = AxisBinning(self.cfg.x)
        self.y = AxisBinning(self.cfg.y)

    @property
    def num_tokens(self) -> int:
        """Tokens per trajectory: 2 per waypoint."""
        return 2 * self.spec.num_poses

    def prior(self, ego: EgoState | None) -> np.ndarray:
        """(T, 2) path the tokens are relative to: zeros for ``prior: none``, else the ego's
        constant-twist arc (``ego`` required)."""
        if self.cfg.prior == "none":
            return np.zeros((self.spec.num_poses, 2))
        if ego is None:
            raise ValueError(f"trajectory.prior {self.cfg.prior!r}: the ego state is required to encode or decode")
        if not ego.is_finite():
            raise ValueError("ego: expected a finite state for the trajectory prior")
        return constant_twist_path(ego, self.spec.times)[:, :2]

    def encode(self, waypoints: np.ndarray, ego: EgoState | None = None) -> np.ndarray:
        """(T, 2 or 3) waypoints [m] -> (2T,) int64 interleaved ``x, y`` bin indices (yaw ignored);
        ``ego``: the state the waypoints start from (needed by a prior)."""
        w = np.asarray(waypoints, np.float64)
        if w.ndim != 2 or w.shape[0] != self.spec.num_poses or w.shape[1] < 2:
            raise ValueError(f"waypoints: expected shape ({self.spec.num_poses}, 2 or 3), got {w.shape}")
        if not np.isfinite(w[:, :2]).all():
            raise ValueError("waypoints: expected finite x, y")
        r = w[:, :2] - self.prior(ego)
        out = np.empty(self.num_tokens, np.int64)
        out[0::2] = self.x.encode(r[:, 0])
        out[1::2] = self.y.encode(r[:, 1])
        return out

    def decode(self, tokens: np.ndarray, ego: EgoState | None = None) -> np.ndarray:
        """(2T,) bin indices -> (T, 3) poses ``(x, y, yaw)`` with yaw from :func:`~wamdiff_ros.geometry.path_yaw`."""
        t = np.asarray(tokens, np.int64).reshape(-1)
        if t.size != self.num_tokens:
            raise ValueError(f"trajectory tokens: expected {self.num_tokens}, got {t.size}")
        xy = np.stack([self.x.decode(t[0::2]), self.y.decode(t[1::2])], axis=1) + self.prior(ego)
        return np.concatenate([xy, path_yaw(xy)[:, None]], axis=1)

    def max_error(self, waypoints: np.ndarray | None = None) -> np.ndarray | float:
        """Worst-case x/y quantisation error [m]: per waypoint (T, 2) for ``waypoints``, else the
        largest over the whole range (a float)."""
        if waypoints is None:
            return max(self.x.max_error(), self.y.max_error())
        w = np.asarray(waypoints, np.float64)
        return np.stack([self.x.max_error(w[:, 0]), self.y.max_error(w[:, 1])], axis=1)

    def report(self) -> dict:
        """Quantisation error summary (JSON-ready) for model cards and logs."""
        probe = np.array([0.0, 3.5, 10.0, 30.0])
        return {
            "prior": self.cfg.prior,
            "x": {"range_m": [self.cfg.x.lo, self.cfg.x.hi], "bins": self.x.size, "max_error_m": self.x.max_error()},
            "y": {
                "range_m": [self.cfg.y.lo, self.cfg.y.hi],
                "bins": self.y.size,
                "max_error_m": self.y.max_error(),
                "max_error_at_m": {f"{p:g}": float(self.y.max_error(np.array([p]))[0]) for p in probe},
            },
        }
