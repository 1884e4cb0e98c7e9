"""Bird's-eye colour rasters of the road around the ego, at several resolutions (a mip chain).

The renderer looks ground pixels up in these rasters. Each level covers the ground within ``reach``
metres of the ego at ``resolution`` m/px; far pixels use coarse levels, which also keeps thin lane
paint from aliasing when a camera pixel spans metres of road. A level's window is a pure function of
the ego position (its centre snaps to a grid of ``grid`` metres) and is redrawn only when that snapped
centre changes, so kilometre-long lanes cost a small redraw every few tens of metres.

Raster pixel ``(row j, col i)`` has its centre at map ``((i + ox) * res, (j + oy) * res)`` where
``(ox, oy)`` is the integer origin index of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wamdiff_ros.geometry import arc_length
from wamdiff_ros.types import Lane

_SHIFT = 3
"""Fixed-point fraction bits for OpenCV drawing (1/8 px)."""


@dataclass(frozen=True)
class RasterLevel:
    """One level of the road raster.

    Attributes:
        resolution: ground size of a raster pixel [m/px].
        reach: ground points up to this distance from base_link are looked up in this level [m].
        grid: the window centre snaps to this grid [m]; a multiple of ``resolution``.
    """

    resolution: float
    reach: float
    grid: float

    def __post_init__(self):
        if not (self.resolution > 0 and self.reach > 0 and self.grid > 0):
            raise ValueError(f"RasterLevel: resolution, reach and grid must be > 0, got {self}")
        ratio = self.grid / self.resolution
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(f"RasterLevel.grid: expected a multiple of resolution {self.resolution}, got {self.grid}")

    @property
    def grid_px(self) -> int:
        return round(self.grid / self.resolution)

    @property
    def half_px(self) -> int:
        """Half the window side [px]: reach plus half a grid step plus a bilinear margin."""
        return int(np.ceil((self.reach + self.grid / 2) / self.resolution)) + 2


DEFAULT_LEVELS: tuple[RasterLevel, ...] = (
    RasterLevel(resolution=0.075, reach=20.0, grid=7.5),
    RasterLevel(resolution=0.2, reach=50.0, grid=20.0),
    RasterLevel(resolution=0.5, reach=120.0, grid=40.0),
)
"""Lateral footprint of a 90° 256-px camera pixel is ~d/128 m at distance d: 0.16 m at 20 m, 0.4 m at 50 m."""


@dataclass(frozen=True)
class RoadStyle:
    """Colours (RGB) and paint geometry of the road raster.

    Attributes:
        offroad, asphalt, paint: RGB colours.
        line_width: painted line width [m].
        dash_length, dash_gap: dashed-line pattern along the centerline arc length [m].
    """

    offroad: tuple[int, int, int] = (86, 112, 62)
    asphalt: tuple[int, int, int] = (96, 96, 100)
    paint: tuple[int, int, int] = (236, 236, 228)
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_gap: float = 9.0


class RoadRaster:
    """Cached BEV colour window of ``lanes`` for one :class:`RasterLevel`."""

    def __init__(self, lanes: list[Lane], level: RasterLevel, style: RoadStyle | None = None):
        self.level = level
        self.style = style or RoadStyle()
        self.set_lanes(lanes)

    def set_lanes(self, lanes: list[Lane]) -> None:
        """Replace the road (drops the cached window)."""
        for lane in lanes:
            if not isinstance(lane, Lane):
                raise ValueError(f"RoadRaster lanes: expected types.Lane items, got {type(lane).__name__}")
        self._lanes = [(lane, arc_length(lane.centerline), *lane.boundaries) for lane in lanes]
        self._key: tuple[int, int] | None = None
        self._image: np.ndarray | None = None
        self.redraws = 0

    @property
    def key(self) -> tuple[int, int] | None:
        """Snapped centre (raster pixel index) of the current window; None before the first."""
        return self._key

    def window(self, ego_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window covering ``reach`` around ``ego_xy`` (map, m): ``(image H×W×3 uint8, origin index (2,) int)``."""
        g = self.level.grid_px
        centre = np.round(np.asarray(ego_xy, np.float64) / self.level.grid).astype(np.int64) * g
        key = (int(centre[0]), int(centre[1]))
        if key != self._key:
            self._image = self._draw(np.array(key, np.int64) - self.level.half_px)
            self._key = key
            self.redraws += 1
        return self._image, np.array(self._key, np.int64) - self.level.half_px

    def _draw(self, origin: np.ndarray) -> np.ndarray:
        lv, st = self.level, self.style
        size = 2 * lv.half_px + 1
        img = np.empty((size, size, 3), np.uint8)
        img[:] = np.tile(np.array(st.offroad, np.uint8), (size, 1))
        visible = []
        for lane, s, left, right in self._lanes:
            span = _visible_span(lane.centerline / lv.resolution - origin, size, lane.width.max() / lv.resolution)
            if span is None:
                continue
            i0, i1 = span
            visible.append((lane, s, left, right, i0, i1))
            poly = np.concatenate([left[i0:i1], right[i0:i1][::-1]])
            cv2.fillPoly(img, [self._fixed(poly, origin)], st.asphalt, cv2.LINE_8, _SHIFT)
        thickness = max(1, round(st.line_width / lv.resolution))
        cover = min(1.0, st.line_width / (thickness * lv.resolution))
        colour = tuple(float(a + cover * (p - a)) for a, p in zip(st.asphalt, st.paint))
        lines = []
        for lane, s, left, right, i0, i1 in visible:
            for edge, marking in zip((left, right), lane.markings):
                if marking == "solid":
                    lines.append(self._fixed(edge[i0:i1], origin))
                elif marking == "dashed":
                    lines.extend(self._dashes(edge, s, i0, i1, origin, size))
        if lines:
            cv2.polylines(img, lines, False, colour, thickness, cv2.LINE_AA, _SHIFT)
        return img

    def _dashes(
        self, edge: np.ndarray, s: np.ndarray, i0: int, i1: int, origin: np.ndarray, size: int
    ) -> list[np.ndarray]:
        """Dash polylines of one lane edge, phased by the centerline arc length so neighbours agree."""
        st = self.style
        period = st.dash_length + st.dash_gap
        starts = np.arange(np.floor(s[i0] / period) * period, s[i1 - 1], period)
        if not len(starts):
            return []
        ds = starts[:, None] + np.linspace(0.0, st.dash_length, 4)[None, :]
        ds = np.clip(ds, s[0], s[-1])
        xy = np.stack([np.interp(ds, s, edge[:, 0]), np.interp(ds, s, edge[:, 1])], -1)
        px = xy / self.level.resolution - origin
        keep = (ds[:, -1] > ds[:, 0]) & ((px.max(1) >= -2).all(-1) & (px.min(1) <= size + 2).all(-1))
        return list(np.round(px[keep] * (1 << _SHIFT)).astype(np.int32))

    def _fixed(self, xy: np.ndarray, origin: np.ndarray) -> np.ndarray:
        px = xy / self.level.resolution - origin
        return np.round(px * (1 << _SHIFT)).astype(np.int32)


def _visible_span(px: np.ndarray, size: int, margin: float) -> tuple[int, int] | None:
    """Slice ``(i0, i1)`` of polyline points whose segments touch the square ``[-margin, size + margin]``."""
    a, b = px[:-1], px[1:]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    hit = ((hi >= -margin) & (lo <= size + margin)).all(-1)
    idx = np.flatnonzero(hit)
    if not len(idx):
        return None
    return int(idx[0]), int(idx[-1]) + 2
