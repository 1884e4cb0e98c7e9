"""Per-scene map raster: which lanes cover a point, the drivable area, the intersection area, and the
nearest centre-line segment of the (non-intersection) lane under a point.

NAVSIM tests box corners against shapely lane / drivable-area polygons. Here every lane polygon (its
left and right boundary, see :attr:`Lane.boundaries`) is rasterised once per scene at ``resolution``
metres with OpenCV, and each query is an O(1) array lookup, which is what makes scoring thousands of
candidates cheap. OpenCV fills a cell when the polygon reaches to within about half a cell of its
centre, so lane membership is placed to within one cell. The drivable area (DAC) is exact: cells
within :data:`_BAND` cells of a change in the union of lanes form a band where a point is tested
against the lanes' polygons themselves (each lane is the union of the quads between consecutive
boundary points; bucketed on a coarse grid); elsewhere the cell decides. Points
outside the raster window are off-road.

NAVSIM's drivable area covers a junction's whole interior (its roadblock connectors), while the world
only has the junction's connector lanes; ``junction_widening`` widens those lanes to stand in for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from wamdiff_ros.scoring.buckets import Buckets, bucket_boxes
from wamdiff_ros.scoring.kernels import quads_contain
from wamdiff_ros.types import Lane

_SHIFT = 4  # fractional bits for cv2 polygon coordinates
_BAND = 3  # [cells] half-width of the band around the union's edge decided by polygon tests
_BUCKET = 2.0  # [m] bucket edge for the lane quads


@dataclass
class LaneQuads:
    """The lanes as quads ``[left[k], left[k+1], right[k+1], right[k]]`` (Q, 4, 2) [m], bucketed, and
    their edges from each corner to the next: start (x, y), end y, run and rise, (Q, 4) each."""

    quads: np.ndarray
    buckets: Buckets

    def __post_init__(self):
        a, b = self.quads, np.roll(self.quads, -1, axis=1)
        edges = (a[..., 0], a[..., 1], b[..., 1], b[..., 0] - a[..., 0], b[..., 1] - a[..., 1])
        self.edges = tuple(np.ascontiguousarray(e, np.float64) for e in edges)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(P,) bool: points (P, 2) strictly inside any quad (crossing-number rule)."""
        b = self.buckets
        points = np.asarray(points, np.float64)
        return quads_contain(
            np.ascontiguousarray(points[:, 0]),
            np.ascontiguousarray(points[:, 1]),
            np.asarray(b.origin, np.float64),
            float(b.size),
            b.shape[0],
            b.shape[1],
            b.start,
            b.item,
            *self.edges,
        )


@dataclass
class MapRaster:
    """Rasterised lanes.

    Attributes:
        origin: (2,) map coordinates of the raster's lower-left corner [m].
        resolution: cell size [m].
        lane_bits: (H, W, K) uint64: bit ``i % 64`` of word ``i // 64`` set where lane index ``i`` covers.
        segment: (H, W) int32 index into the ``seg_*`` tables of the non-intersection lane segment under
            the cell (-1 where none).
        seg_heading: (S,) segment headings [rad]; seg_lane: (S,) lane index of each segment.
        intersection_bits: (K,) uint64 mask of lanes flagged ``in_intersection``.
        lane_ids: lane id of each lane index.
        edge_band: (H, W) bool, cells near the edge of the union of lanes (drivability decided exactly).
        lane_quads: the lanes' quads (junction lanes widened) for the exact test in the band.
    """

    origin: np.ndarray
    resolution: float
    lane_bits: np.ndarray
    segment: np.ndarray
    seg_heading: np.ndarray
    seg_lane: np.ndarray
    intersection_bits: np.ndarray
    lane_ids: list[int]
    edge_band: np.ndarray
    lane_quads: LaneQuads

    @property
    def words(self) -> int:
        return self.lane_bits.shape[-1]

    @property
    def upper(self) -> np.ndarray:
        """(2,) map coordinates of the raster's upper-right corner [m]."""
        return self.origin + self.resolution * np.array(self.segment.shape[::-1])

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell index and an inside-the-raster mask, (...) each, of map points with coordinates
        ``x``, ``y`` (...): what the lookups below read (``np.take(..., mode="clip")``; the cells of
        points outside are then ignored)."""
        h, w = self.segment.shape
        col = np.floor((x - self.origin[0]) / self.resolution).astype(np.int64)
        row = np.floor((y - self.origin[1]) / self.resolution).astype(np.int64)
        inside = (col.view(np.uint64) < w) & (row.view(np.uint64) < h)
        row *= w
        row += col
        return row, inside

    def bits_at(self, x: np.ndarray, y: np.ndarray, where: tuple | None = None) -> np.ndarray:
        """Lane-membership bit words (..., K) at map points ``x``, ``y`` (...); zero outside the raster.
        ``where``: :meth:`locate` of the points, if at hand."""
        flat, inside = self.locate(x, y) if where is None else where
        out = np.take(self.lane_bits.reshape(-1, self.words), flat, axis=0, mode="clip")
        out[~inside] = 0
        return out

    def drivable(
        self, x: np.ndarray, y: np.ndarray, bits: np.ndarray | None = None, where: tuple | None = None
    ) -> np.ndarray:
        """True (...) where map points ``x``, ``y`` (...) lie inside the union of lanes: the cell decides
        away from the union's edge, the lane quads near it. ``bits``, ``where``: :meth:`bits_at` and
        :meth:`locate` of the points, if at hand."""
        flat, inside = self.locate(x, y) if where is None else where
        if bits is None:
            bits = self.bits_at(x, y, (flat, inside))
        on = (bits[..., 0] != 0 if self.words == 1 else (bits != 0).any(-1)).ravel()
        band = np.flatnonzero((np.take(self.edge_band.ravel(), flat, mode="clip") & inside).ravel())
        if len(band):
            on[band] = self.lane_quads.contains(np.stack([x.ravel()[band], y.ravel()[band]], -1))
        return on.reshape(flat.shape)

    def segment_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Segment index (...) of the non-intersection lane under map points ``x``, ``y`` (...), -1 where
        none."""
        flat, inside = self.locate(x, y)
        out = np.take(self.segment.ravel(), flat, mode="clip")
        out[~inside] = -1
        return out

    def lane_mask(self, lane_indices) -> np.ndarray:
        """(K,) uint64 bit words with the given lane indices set."""
        out = np.zeros(self.words, np.uint64)
        for i in lane_indices:
            out[i // 64] |= np.uint64(1) << np.uint64(i % 64)
        return out


def _edge_band(lane_bits: np.ndarray) -> np.ndarray:
    union = (lane_bits != 0).any(-1).astype(np.uint8)
    kernel = np.ones((2 * _BAND + 1, 2 * _BAND + 1), np.uint8)
    return cv2.dilate(union, kernel) != cv2.erode(union, kernel, borderType=cv2.BORDER_REPLICATE)


def _to_pixels(points: np.ndarray, origin: np.ndarray, res: float) -> np.ndarray:
    uv = (np.asarray(points) - origin) / res - 0.5
    return np.round(uv * (1 << _SHIFT)).astype(np.int32)


def build_raster(
    lanes: list[Lane],
    center: np.ndarray,
    radius: float,
    resolution: float = 0.1,
    junction_widening: float = 0.0,
    max_cells: int = 16_000_000,
) -> MapRaster:
    """Rasterise ``lanes`` inside the square of half-size ``radius`` [m] around ``center`` (2,), lanes
    flagged ``in_intersection`` ``junction_widening`` metres wider than their width.

    The resolution is coarsened if the window would exceed ``max_cells`` cells.
    """
    if not resolution > 0:
        raise ValueError(f"build_raster: resolution must be > 0 m, got {resolution}")
    if not junction_widening >= 0:
        raise ValueError(f"build_raster: junction_widening must be >= 0 m, got {junction_widening}")
    center = np.asarray(center, np.float64)[:2]
    bounds = [
        replace(lane, width=lane.width + junction_widening).boundaries
        if lane.in_intersection and junction_widening
        else lane.boundaries
        for lane in lanes
    ]
    if bounds:
        allp = np.concatenate([np.concatenate(b) for b in bounds])
        lo = np.maximum(allp.min(0) - 1.0, center - radius)
        hi = np.minimum(allp.max(0) + 1.0, center + radius)
    else:
        lo = hi = center
    hi = np.maximum(hi, lo + resolution)
    extent = hi - lo
    res = max(resolution, float(np.sqrt(extent[0] * extent[1] / max_cells)))
    w, h = (np.ceil(extent / res).astype(int) + 1).tolist()
    words = max(1, (len(lanes) + 63) // 64)
    lane_bits = np.zeros((h, w, words), np.uint64)
    segment = np.full((h, w), -1, np.int32)
    seg_heading, seg_lane = [], []
    n_seg = 0
    tmp = np.zeros((h, w), np.uint8)
    quads = []
    for li, (lane, (left, right)) in enumerate(zip(lanes, bounds)):
        poly = np.concatenate([left, right[::-1]])
        if (poly.max(0) < lo).any() or (poly.min(0) > hi).any():
            continue
        quads.append(np.stack([left[:-1], left[1:], right[1:], right[:-1]], 1))
        pix = _to_pixels(poly, lo, res)
        c0, r0 = np.clip((pix.min(0) >> _SHIFT) - 1, 0, [w - 1, h - 1])
        c1, r1 = np.clip((pix.max(0) >> _SHIFT) + 2, 1, [w, h])
        sub = tmp[r0:r1, c0:c1]
        sub[:] = 0
        cv2.fillPoly(sub, [pix - (np.array([c0, r0]) << _SHIFT)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        lane_bits[r0:r1, c0:c1, li // 64][sub.astype(bool)] |= np.uint64(1) << np.uint64(li % 64)
        if lane.in_intersection:
            continue
        d = np.diff(lane.centerline, axis=0)
        seg_quads = quads[-1]
        keep = np.maximum(np.linalg.norm(d, axis=1), 1e-9) > 1e-6
        keep &= ~((seg_quads.max(1) < lo).any(-1) | (seg_quads.min(1) > hi).any(-1))
        for pix in _to_pixels(seg_quads[keep], lo, res):
            cv2.fillPoly(segment, [pix], n_seg, lineType=cv2.LINE_8, shift=_SHIFT)
            n_seg += 1
        seg_heading.extend(np.arctan2(d[keep, 1], d[keep, 0]))
        seg_lane.extend([li] * int(keep.sum()))
    band = _edge_band(lane_bits)
    all_quads = np.concatenate(quads) if quads else np.zeros((0, 4, 2))
    top = lo + res * np.array([w, h])
    raster = MapRaster(
        origin=lo,
        resolution=res,
        lane_bits=lane_bits,
        segment=segment,
        seg_heading=np.array(seg_heading),
        seg_lane=np.array(seg_lane, np.int64),
        intersection_bits=np.zeros(words, np.uint64),
        lane_ids=[lane.lane_id for lane in lanes],
        edge_band=band,
        lane_quads=LaneQuads(all_quads, bucket_boxes(all_quads.min(1), all_quads.max(1), lo, top, _BUCKET)),
    )
    raster.intersection_bits = raster.lane_mask([i for i, lane in enumerate(lanes) if lane.in_intersection])
    return raster
