"""What the map says about each simulated ego box: a corner off the drivable area (DAC), in several
lanes with none holding the whole box (NC's and TTC's lateral rule), the centre or rear axle in an
intersection (LK, TTC) and any corner or the centre on a lane whose light is red (TLC)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.scoring.drivable import MapRaster


@dataclass
class BoxMapFlags:
    """Per box (G, N) bool: ``offroad``, ``multi_lane``, ``center_in_intersection``,
    ``rear_in_intersection``; per candidate (G,) bool: ``red_light`` (a red-light lane entered)."""

    offroad: np.ndarray
    multi_lane: np.ndarray
    center_in_intersection: np.ndarray
    rear_in_intersection: np.ndarray
    red_light: np.ndarray


def _nonzero(words: np.ndarray) -> np.ndarray:
    return words[..., 0] != 0 if words.shape[-1] == 1 else (words != 0).any(-1)


def box_map_flags(
    raster: MapRaster,
    corners: tuple[np.ndarray, np.ndarray],
    center: tuple[np.ndarray, np.ndarray],
    rear: tuple[np.ndarray, np.ndarray],
    red_bits: np.ndarray,
) -> BoxMapFlags:
    """Flags of boxes with corners (x, y), (4, G, N) each, centres and rear axles (x, y), (G, N) each
    [m]; ``red_bits`` (N, K): the lanes whose light is red at each step."""
    where = raster.locate(*corners)
    cb = raster.bits_at(*corners, where)
    offroad = ~raster.drivable(*corners, cb, where).all(0)
    union = cb[0] | cb[1] | cb[2] | cb[3]
    inter = cb[0] & cb[1] & cb[2] & cb[3]
    count = np.bitwise_count(union)
    multi = ((count[..., 0] if raster.words == 1 else count.sum(-1)) > 1) & ~_nonzero(inter)
    none = np.zeros(offroad.shape, bool)
    center_int = rear_int = none
    red = np.zeros(len(offroad), bool)
    junction = raster.intersection_bits.any()
    if junction or red_bits.any():
        bits_center = raster.bits_at(*center)
        if junction:
            center_int = _nonzero(bits_center & raster.intersection_bits)
            rear_int = _nonzero(raster.bits_at(*rear) & raster.intersection_bits)
        red = _nonzero((union | bits_center) & red_bits[None]).any(-1)
    return BoxMapFlags(offroad, multi, center_int, rear_int, red)
