"""Multi-camera pinhole renderer of the embedded driving world: sky, road, lane paint, off-road and
traffic as shaded 3D boxes, per camera of a :class:`~wamdiff_ros.rig.Rig`.

Ground: the cameras are rigid on the ego, so every pixel's ground-plane (z = 0) point in base_link is
computed once. Rows whose pixel spans a long stretch of road (near the horizon) are supersampled
vertically (up to ``max_subsamples`` rays per pixel). Per frame those base_link points are moved by
the ego pose and looked up with ``cv2.remap`` (bilinear) in BEV colour rasters of the road
(:mod:`wamdiff_ros.sim.road_raster`), at a resolution that matches the pixel's footprint. Distance
haze fades the ground (and boxes) toward a haze colour so the horizon reads; the sky is a static
gradient.

Boxes: agents valid at the requested time index and within ``box_range`` of the ego are drawn as
boxes (bottom on the ground, height by agent type), back faces culled, faces clipped against a near
plane, painter's order far→near per camera by the distance from the camera to the box footprint
(exact for boxes that do not overlap in plan view), each after a soft contact shadow.

Output is a pure function of (rig, lanes, ego pose, agents, t_index): bit-identical on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wamdiff_ros.geometry import box_corners, relative
from wamdiff_ros.rig import OPTICAL_FROM_BODY, CameraSpec, Rig
from wamdiff_ros.sim.road_raster import DEFAULT_LEVELS, RasterLevel, RoadRaster, RoadStyle
from wamdiff_ros.types import Agents, AgentType, Lane

_SHIFT = 4

_FACES = np.array([[0, 3, 7, 4], [1, 2, 6, 5], [0, 1, 5, 4], [3, 2, 6, 7], [4, 5, 6, 7]])
"""Box faces (front, rear, left, right, top) as corner indices: 0-3 bottom FL, RL, RR, FR; 4-7 top."""
_SHADOW = np.array([8, 9, 10, 11])
"""Corners of the contact shadow: the footprint grown by ``SHADOW_MARGIN`` on the ground."""
SHADOW_MARGIN = 0.25

AGENT_HEIGHT = {AgentType.VEHICLE: 1.5, AgentType.PEDESTRIAN: 1.75, AgentType.BICYCLE: 1.7, AgentType.STATIC: 1.0}
"""Box height per agent type [m]; vehicles longer than ``TRUCK_LENGTH`` get ``TRUCK_HEIGHT``."""
TRUCK_LENGTH, TRUCK_HEIGHT = 7.0, 3.4

_PALETTES = {
    AgentType.VEHICLE: np.array(
        [[225, 225, 225], [160, 164, 170], [40, 40, 44], [170, 30, 30], [30, 60, 150], [90, 100, 110], [200, 170, 60]],
        np.float64,
    ),
    AgentType.PEDESTRIAN: np.array([[200, 60, 40], [50, 90, 160], [60, 60, 60], [220, 200, 60]], np.float64),
    AgentType.BICYCLE: np.array([[40, 150, 60], [190, 90, 30], [60, 60, 160]], np.float64),
    AgentType.STATIC: np.array([[240, 120, 20], [230, 230, 230]], np.float64),
}


@dataclass(frozen=True)
class RenderStyle:
    """Colours (RGB) and lighting of the rendered scene.

    Attributes:
        sky_top, sky_horizon: sky gradient from the zenith side of the image to the horizon.
        haze: colour distant ground and boxes fade to.
        haze_range: distance from the camera at which haze is complete [m].
        haze_power: haze weight is ``(distance / haze_range) ** haze_power``.
        light: direction toward the sun in the map frame (normalised internally).
        ambient: shade of a face turned away from the sun (1 = fully lit).
        shadow: darkening of the ground under a box (0 = none, 1 = black).
    """

    sky_top: tuple[int, int, int] = (72, 124, 204)
    sky_horizon: tuple[int, int, int] = (172, 198, 230)
    haze: tuple[int, int, int] = (196, 198, 200)
    haze_range: float = 120.0
    haze_power: float = 1.3
    light: tuple[float, float, float] = (0.35, 0.55, 0.75)
    ambient: float = 0.45
    shadow: float = 0.55


class _CameraTable:
    """Per-camera precomputation over the dynamic sub-row grid (rows at and below the horizon).

    Every sub-sample has a base_link ground point ``(gx, gy)``, the raster level it reads from, a
    static background (sky, or haze times its weight) and the weight of the looked-up ground colour.
    Sky and beyond-range samples have weight 0 and read a harmless pixel.
    """

    def __init__(self, cam: CameraSpec, levels: tuple[RasterLevel, ...], style: RenderStyle, span: float, max_sub: int):
        self.cam = cam
        h, w = cam.height, cam.width
        f, cx, cy = cam.focal, (w - 1) / 2, (h - 1) / 2
        to_base = cam.rotation @ OPTICAL_FROM_BODY.T
        origin = np.asarray(cam.position, np.float64)

        def rays(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            u, v = np.broadcast_arrays(u, v)
            opt = np.stack([(u - cx) / f, (v - cy) / f, np.ones(u.shape)], -1)
            return opt @ to_base.T

        def hit(d: np.ndarray) -> np.ndarray:
            """Ray parameter of the ground hit (inf where the ray does not go down)."""
            return np.where(d[..., 2] < -1e-9, -origin[2] / np.minimum(d[..., 2], -1e-9), np.inf)

        def ground_range(d: np.ndarray) -> np.ndarray:
            return hit(d) * np.linalg.norm(d[..., :2], axis=-1)

        probe_u = np.array([0.0, cx, w - 1.0])
        rows = np.arange(h, dtype=np.float64)
        top = ground_range(rays(probe_u[None, :], rows[:, None] - 0.5))
        bottom = ground_range(rays(probe_u[None, :], rows[:, None] + 0.5))
        with np.errstate(invalid="ignore"):
            need = np.nan_to_num((top - bottom).max(1) / span, nan=np.inf, posinf=np.inf)
        ground_rows = np.isfinite(bottom).any(1)
        k = np.where(need > 1, 2 ** np.ceil(np.log2(np.maximum(need, 1.0))), 1.0)
        k = np.minimum(k, max_sub).astype(np.int64)
        self.row0 = int(np.argmax(ground_rows)) if ground_rows.any() else h

        v_sub = np.concatenate([r - 0.5 + (np.arange(k[r]) + 0.5) / k[r] for r in range(h)])
        d = rays(np.arange(w, dtype=np.float64)[None, :], v_sub[:, None])
        sub_row = np.repeat(np.arange(h), k)
        lam = hit(d)
        finite = np.isfinite(lam)
        ground = origin + np.where(finite, lam, 0.0)[..., None] * d
        cam_dist = lam * np.linalg.norm(d, axis=-1)
        base_dist = np.where(finite, np.linalg.norm(ground[..., :2], axis=-1), np.inf)

        elev = np.arcsin(np.clip(d[..., 2] / np.linalg.norm(d, axis=-1), -1, 1))
        g = np.clip(elev / 0.6, 0, 1)[..., None] ** 0.7
        sky = np.asarray(style.sky_horizon) * (1 - g) + np.asarray(style.sky_top) * g
        alpha = haze_weight(cam_dist, style)
        level = np.full(base_dist.shape, -1)
        for li in sorted(range(len(levels)), key=lambda i: -levels[i].reach):
            level[base_dist <= levels[li].reach] = li
        on_ground = level >= 0
        haze = np.asarray(style.haze, np.float64)
        bg = np.where(finite[..., None], haze * np.where(on_ground, alpha, 1.0)[..., None], sky)
        wgt = np.where(on_ground, 1 - alpha, 0.0)

        static = np.zeros((h, w, 3))
        np.add.at(static, sub_row, bg / k[sub_row][:, None, None])
        self.static = np.floor(static + 0.5).astype(np.uint8)

        first = int(np.searchsorted(sub_row, self.row0))
        self.bg = bg[first:].astype(np.float32)
        self.wgt = wgt[first:, :, None].astype(np.float32)
        self.gx = np.ascontiguousarray(np.where(on_ground, ground[..., 0], 0.0)[first:], np.float32)
        self.gy = np.ascontiguousarray(np.where(on_ground, ground[..., 1], 0.0)[first:], np.float32)
        self.level = np.maximum(level[first:], 0).astype(np.intp)
        self.inv_res = np.where(on_ground[first:], 1.0 / np.array([lv.resolution for lv in levels])[self.level], 0.0)
        self.inv_res = self.inv_res.astype(np.float32)
        self.bands = []
        r, sub = self.row0, 0
        while r < h:
            r1 = r
            while r1 < h and k[r1] == k[r]:
                r1 += 1
            n = (r1 - r) * int(k[r])
            self.bands.append((r - self.row0, r1 - self.row0, int(k[r]), sub, sub + n))
            r, sub = r1, sub + n

    def ground(self, yaw: float, atlas: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The sky and ground image (H×W×3 uint8) for an ego heading ``yaw``.

        ``offsets`` (L, 2): atlas pixel of the ego for each raster level, so a sample at base_link
        ``(gx, gy)`` reads atlas ``offsets[level] + R(yaw)·(gx, gy) / resolution``.
        """
        if self.row0 >= self.cam.height:
            return self.static.copy()
        c, s = float(np.cos(yaw)), float(np.sin(yaw))
        off = offsets.astype(np.float32)
        mx = cv2.addWeighted(self.gx, c, self.gy, -s, 0.0) * self.inv_res + off[self.level, 0]
        my = cv2.addWeighted(self.gx, s, self.gy, c, 0.0) * self.inv_res + off[self.level, 1]
        looked = cv2.remap(atlas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        comp = self.bg + self.wgt * looked
        w = self.cam.width
        image = self.static.copy()
        for r0, r1, k, s0, s1 in self.bands:
            block = comp[s0:s1]
            if k > 1:
                block = cv2.resize(block, (w, r1 - r0), interpolation=cv2.INTER_AREA)
            image[self.row0 + r0 : self.row0 + r1] = block + 0.5
        return image


def haze_weight(distance: np.ndarray, style: RenderStyle) -> np.ndarray:
    """Haze weight in [0, 1] at ``distance`` from the camera [m] (inf -> 1)."""
    d = np.nan_to_num(np.asarray(distance, np.float64), posinf=1e9)
    return np.clip(d / style.haze_range, 0.0, 1.0) ** style.haze_power


class Renderer:
    """Renders the cameras of ``rig`` in a world of ``lanes`` (map frame) and agent boxes.

    Args:
        rig: the camera rig (order, sizes, intrinsics, mounting poses).
        lanes: the road, map frame.
        levels: road-raster mip levels (resolution, reach, grid); the largest reach bounds the ground.
        road_style, style: colours and lighting.
        box_range: agents farther than this from the ego are not drawn [m].
        near: near clipping plane of box faces [m].
        subsample_span: a pixel row is supersampled until each sub-row spans at most this much road [m].
        max_subsamples: most sub-rows per pixel row (a power of two).
    """

    def __init__(
        self,
        rig: Rig,
        lanes: list[Lane],
        *,
        levels: tuple[RasterLevel, ...] = DEFAULT_LEVELS,
        road_style: RoadStyle | None = None,
        style: RenderStyle | None = None,
        box_range: float = 100.0,
        near: float = 0.1,
        subsample_span: float = 0.75,
        max_subsamples: int = 8,
    ):
        if not isinstance(rig, Rig):
            raise ValueError(f"Renderer rig: expected a wamdiff_ros.rig.Rig, got {type(rig).__name__}")
        if not levels:
            raise ValueError("Renderer levels: expected at least one RasterLevel")
        if not (box_range > 0 and near > 0 and subsample_span > 0 and max_subsamples >= 1):
            raise ValueError("Renderer: box_range, near and subsample_span must be > 0 and max_subsamples >= 1")
        low = [c.name for c in rig.cameras if not c.position[2] > 0]
        if low:
            raise ValueError(f"Renderer rig: cameras {low} must be mounted above the ground (position z > 0)")
        self.rig = rig
        self.levels = tuple(levels)
        self.style = style or RenderStyle()
        self.box_range = float(box_range)
        self.near = float(near)
        self._rasters = [RoadRaster([], lv, road_style) for lv in self.levels]
        sizes = [2 * lv.half_px + 1 for lv in self.levels]
        self._atlas_row = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._atlas = np.zeros((sum(sizes), max(sizes), 3), np.uint8)
        self.set_lanes(lanes)
        self._tables = {
            cam.name: _CameraTable(cam, self.levels, self.style, subsample_span, max_subsamples) for cam in rig.cameras
        }
        asphalt = np.asarray((road_style or RoadStyle()).asphalt, np.float64)
        self._shadow_colour = asphalt * (1 - self.style.shadow)
        light = np.asarray(self.style.light, np.float64)
        self._light = light / np.linalg.norm(light)

    def set_lanes(self, lanes: list[Lane]) -> None:
        """Replace the road (a new episode)."""
        for r in self._rasters:
            r.set_lanes(list(lanes))
        self._atlas_keys: list[tuple[int, int] | None] = [None] * len(self._rasters)

    @property
    def raster_redraws(self) -> int:
        """How many times a road-raster window has been redrawn (for benchmarks)."""
        return sum(r.redraws for r in self._rasters)

    def render(self, ego_pose: np.ndarray, agents: Agents, t_index: int = 0) -> dict[str, np.ndarray]:
        """Camera name -> H×W×3 uint8 RGB, in rig order.

        ``ego_pose`` (3,) is the map-frame base_link pose; ``agents`` are drawn at time index ``t_index``
        (only valid ones).
        """
        ego, boxes = self._prepare(ego_pose, agents, t_index)
        offsets = self._windows(ego)
        return {name: self._render(table, ego, boxes, offsets) for name, table in self._tables.items()}

    def render_camera(self, name: str, ego_pose: np.ndarray, agents: Agents, t_index: int = 0) -> np.ndarray:
        """One camera's image (H×W×3 uint8 RGB); same arguments as :meth:`render`."""
        if name not in self._tables:
            raise KeyError(f"Renderer: rig {self.rig.name!r} has no camera {name!r} (has {self.rig.names})")
        ego, boxes = self._prepare(ego_pose, agents, t_index)
        return self._render(self._tables[name], ego, boxes, self._windows(ego))

    def _windows(self, ego: np.ndarray) -> np.ndarray:
        """Bring every raster level's window into the atlas; (L, 2) atlas pixel of the ego per level."""
        offsets = np.empty((len(self._rasters), 2))
        for li, raster in enumerate(self._rasters):
            img, origin = raster.window(ego[:2])
            r0 = self._atlas_row[li]
            if self._atlas_keys[li] != raster.key:
                self._atlas[r0 : r0 + img.shape[0], : img.shape[1]] = img
                self._atlas_keys[li] = raster.key
            offsets[li] = ego[:2] / raster.level.resolution - origin + (0, r0)
        return offsets

    def _render(self, table: _CameraTable, ego: np.ndarray, boxes: _Boxes | None, offsets: np.ndarray) -> np.ndarray:
        image = table.ground(ego[2], self._atlas, offsets)
        if boxes is not None:
            self._draw_boxes(image, table.cam, boxes)
        return image

    def _prepare(self, ego_pose, agents: Agents, t_index: int) -> tuple[np.ndarray, _Boxes | None]:
        ego = np.asarray(ego_pose, np.float64)
        if ego.shape != (3,) or not np.isfinite(ego).all():
            raise ValueError(f"Renderer ego_pose: expected a finite (3,) map-frame (x, y, yaw), got {ego!r}")
        if not isinstance(agents, Agents):
            raise ValueError(f"Renderer agents: expected types.Agents, got {type(agents).__name__}")
        if not 0 <= t_index < max(agents.num_steps, 1):
            raise ValueError(f"Renderer t_index: expected 0 <= t_index < {agents.num_steps}, got {t_index}")
        if not len(agents):
            return ego, None
        poses = agents.poses[:, t_index]
        keep = agents.valid[:, t_index] & np.isfinite(poses).all(1) & np.isfinite(agents.sizes).all(1)
        keep &= np.hypot(*(poses[:, :2] - ego[:2]).T) <= self.box_range
        if not keep.any():
            return ego, None
        return ego, _Boxes.build(
            relative(ego, poses[keep]),
            agents.sizes[keep],
            agents.types[keep],
            agents.ids[keep],
            light=_rotate_z(self._light, -ego[2]),
            ambient=self.style.ambient,
        )

    def _draw_boxes(self, image: np.ndarray, cam: CameraSpec, boxes: _Boxes) -> None:
        h, w = image.shape[:2]
        eye = np.asarray(cam.position, np.float64)
        opt = cam.base_link_to_optical(boxes.corners)
        z = opt[..., 2]
        in_front = z >= self.near
        uv = opt[..., :2] / np.maximum(z, self.near)[..., None] * cam.focal + np.array([(w - 1) / 2, (h - 1) / 2])
        lo = np.where(in_front[..., None], uv, np.inf).min(1)
        hi = np.where(in_front[..., None], uv, -np.inf).max(1)
        straddles = in_front.any(1) & ~in_front.all(1)
        onscreen = in_front.any(1) & (straddles | ((hi >= -1).all(1) & (lo[:, 0] <= w) & (lo[:, 1] <= h)))
        if not onscreen.any():
            return
        visible = ((eye - boxes.face_centres) * boxes.normals).sum(-1) > 1e-9
        fade = haze_weight(np.linalg.norm(boxes.centres - eye, axis=1), self.style)[:, None, None]
        haze = np.asarray(self.style.haze, np.float64)
        colours = (boxes.face_colours * (1 - fade) + haze * fade).tolist()
        shadows = (self._shadow_colour * (1 - fade[:, 0]) + haze * fade[:, 0]).tolist()
        pts = np.round(uv * (1 << _SHIFT)).astype(np.int32)
        rel = eye[:2] - boxes.centres[:, :2]
        c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
        local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], 1)
        gap = np.linalg.norm(local - np.clip(local, -boxes.half, boxes.half), axis=1)
        for a in np.flatnonzero(onscreen)[np.argsort(-gap[onscreen], kind="stable")]:
            faces = [(_SHADOW, shadows[a])] + [(_FACES[f], colours[a][f]) for f in np.flatnonzero(visible[a])]
            for idx, colour in faces:
                if straddles[a]:
                    self._fill_clipped(image, cam, opt[a, idx], colour)
                else:
                    cv2.fillConvexPoly(image, pts[a, idx], colour, cv2.LINE_AA, _SHIFT)

    def _fill_clipped(self, image: np.ndarray, cam: CameraSpec, poly: np.ndarray, colour) -> None:
        """Fill an optical-frame polygon after clipping it to the near plane."""
        poly = _clip_near(poly, self.near)
        if len(poly) < 3:
            return
        h, w = image.shape[:2]
        uv = poly[:, :2] / poly[:, 2:3] * cam.focal + np.array([(w - 1) / 2, (h - 1) / 2])
        cv2.fillConvexPoly(image, np.round(uv * (1 << _SHIFT)).astype(np.int32), colour, cv2.LINE_AA, _SHIFT)


@dataclass
class _Boxes:
    """Agent boxes of one frame in base_link: corners (A, 12, 3) (box, then shadow), faces, colours, extents."""

    corners: np.ndarray
    centres: np.ndarray
    yaw: np.ndarray
    half: np.ndarray
    face_centres: np.ndarray
    normals: np.ndarray
    face_colours: np.ndarray

    @classmethod
    def build(cls, poses, sizes, types, ids, light: np.ndarray, ambient: float) -> _Boxes:
        a = len(poses)
        height = np.array([AGENT_HEIGHT[_agent_type(t)] for t in types])
        truck = (types == AgentType.VEHICLE) & (sizes[:, 0] > TRUCK_LENGTH)
        height = np.where(truck, TRUCK_HEIGHT, height)
        foot = box_corners(poses, sizes[:, 0], sizes[:, 1])
        shadow = box_corners(poses, sizes[:, 0] + 2 * SHADOW_MARGIN, sizes[:, 1] + 2 * SHADOW_MARGIN)
        zeros, tops = np.zeros((a, 4, 1)), height[:, None, None].repeat(4, 1)
        corners = np.concatenate(
            [np.concatenate([foot, zeros], -1), np.concatenate([foot, tops], -1), np.concatenate([shadow, zeros], -1)],
            1,
        )
        c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        zero, one = np.zeros(a), np.ones(a)
        fwd = np.stack([c, s, zero], -1)
        left = np.stack([-s, c, zero], -1)
        normals = np.stack([fwd, -fwd, left, -left, np.stack([zero, zero, one], -1)], 1)
        face_centres = corners[:, _FACES].mean(2)
        shade = ambient + (1 - ambient) * np.clip(normals @ light, 0, None)
        base = _agent_colours(ids, types)
        return cls(
            corners=corners,
            centres=np.concatenate([poses[:, :2], height[:, None] / 2], 1),
            yaw=poses[:, 2],
            half=sizes / 2,
            face_centres=face_centres,
            normals=normals,
            face_colours=base[:, None, :] * shade[..., None],
        )


def _agent_colours(ids: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Deterministic body colour (A, 3) per agent from a hash of its id, palette by type."""
    h = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
    out = np.empty((len(ids), 3))
    for i, (hv, t) in enumerate(zip(h, types)):
        pal = _PALETTES[_agent_type(t)]
        jitter = 0.9 + 0.2 * ((int(hv) >> 8) % 101) / 100
        out[i] = np.clip(pal[int(hv) % len(pal)] * jitter, 0, 255)
    return out


def _agent_type(t) -> AgentType:
    """The :class:`AgentType` of a raw type value; unknown values render as vehicles."""
    try:
        return AgentType(int(t))
    except ValueError:
        return AgentType.VEHICLE


def _rotate_z(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland–Hodgman clip of a planar polygon (N, 3) in the optical frame to z >= near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            out.append(a + (near - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out).reshape(-1, 3)


_shared: dict[Rig, Renderer] = {}
"""Rig -> Renderer kept by :func:`shared_renderer` for the episodes one process drives."""


def shared_renderer(rig: Rig, lanes: list[Lane]) -> Renderer:
    """This process's Renderer of ``rig``, its road set to ``lanes`` (building one takes a while, and the
    output depends only on its inputs, so the episodes of a worker reuse it)."""
    renderer = _shared.get(rig)
    if renderer is None:
        renderer = _shared[rig] = Renderer(rig, lanes)
    else:
        renderer.set_lanes(lanes)
    return renderer
