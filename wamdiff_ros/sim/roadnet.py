"""Road network of the embedded world as :class:`~wamdiff_ros.types.Lane` lists, and queries on them.

highway-env describes lanes analytically (StraightLane, SineLane, CircularLane) in screen coordinates
(y down). :func:`lanes_from_network` samples every lane about every metre into REP-103 map-frame
polylines ``(x, -y)`` with stable integer ids (highway-env's graph order), widths, successors from
the road graph, ``(left, right)`` markings from ``line_types`` and the junction flag. This module
and :mod:`wamdiff_ros.sim.world` are the only places that see highway-env's frame.

:class:`LaneMap` answers the questions a driver and the language templates ask of a lane list (which
lane am I in, which lanes are beside it, where does it lead), on any ``list[Lane]``: live or logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import arc_length, project_to_polyline, wrap_angle
from wamdiff_ros.types import Lane

LaneKey = tuple[str, str, int]
"""highway-env lane index ``(from node, to node, lane number)``."""

_MARKING = {0: "none", 1: "dashed", 2: "solid", 3: "solid"}
"""highway-env LineType (NONE, STRIPED, CONTINUOUS, CONTINUOUS_LINE) -> Lane marking."""


def to_map_xy(xy) -> np.ndarray:
    """highway-env screen coordinates (..., 2) -> map frame (x, -y)."""
    p = np.array(xy, np.float64)
    p[..., 1] *= -1.0
    return p


def to_map_yaw(heading) -> np.ndarray | float:
    """highway-env heading (clockwise on screen) -> map yaw (counter-clockwise), wrapped."""
    return wrap_angle(-np.asarray(heading, np.float64))


def lane_keys(network) -> list[LaneKey]:
    """All lane indices of a highway-env RoadNetwork in graph order (the order ids are given in)."""
    return [(f, t, i) for f, tos in network.graph.items() for t, lanes in tos.items() for i in range(len(lanes))]


def successor_keys(network, key: LaneKey) -> list[LaneKey]:
    """Lanes that ``key`` leads into, by highway-env's own rule: on a next road with the same lane
    count the same lane number, otherwise the lane closest to this lane's end."""
    f, t, i = key
    lane = network.get_lane(key)
    end = lane.position(lane.length, 0.0)
    out = []
    for nxt, lanes in network.graph.get(t, {}).items():
        same = len(lanes) == len(network.graph[f][t])
        j = i if same else int(np.argmin([other.distance(end) for other in lanes]))
        turn = wrap_angle(lanes[j].heading_at(0.0) - lane.heading_at(lane.length))
        if abs(float(turn)) < np.radians(120):
            out.append((t, nxt, j))
    return out


def _marking(network, key: LaneKey, side: int) -> str:
    """Marking on ``side`` (0 left, 1 right) of a lane; an unpainted edge shared with a neighbouring lane
    of the same road takes the neighbour's paint there."""
    f, t, i = key
    lanes = network.graph[f][t]
    m = _MARKING.get(int(lanes[i].line_types[side]), "none")
    j = i - 1 if side == 0 else i + 1
    if m == "none" and 0 <= j < len(lanes):
        m = _MARKING.get(int(lanes[j].line_types[1 - side]), "none")
    return m


def sample_lane(lane, spacing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Centerline (N, 2) in the map frame and widths (N,) of a highway-env lane, about every ``spacing`` m."""
    n = max(2, int(np.ceil(lane.length / spacing)) + 1)
    s = np.linspace(0.0, lane.length, n)
    pts = np.array([lane.position(float(v), 0.0) for v in s])
    widths = np.array([lane.width_at(float(v)) for v in s])
    return to_map_xy(pts), widths


def hermite_connector(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, spacing: float = 1.0) -> np.ndarray:
    """Points (N, 2) of a cubic Hermite curve from ``p0`` heading ``h0`` to ``p1`` heading ``h1``."""
    dist = float(np.linalg.norm(p1 - p0))
    n = max(3, int(np.ceil(dist / spacing)) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    m0 = dist * np.array([np.cos(h0), np.sin(h0)])
    m1 = dist * np.array([np.cos(h1), np.sin(h1)])
    return (
        (2 * t**3 - 3 * t**2 + 1) * p0 + (t**3 - 2 * t**2 + t) * m0 + (-2 * t**3 + 3 * t**2) * p1 + (t**3 - t**2) * m1
    )


@dataclass
class SampledNetwork:
    """A highway-env road network as map-frame lanes.

    Attributes:
        lanes: all lanes; ids ``0..K-1`` are highway-env's lanes in graph order (stable for a given
            network), ids from K on are connectors added where highway-env leaves a gap of more than
            ``gap`` metres between a lane's end and its successor's start (its vehicles jump it).
        ids: highway-env lane index -> lane id.
        connectors: (lane id, successor id) -> id of the connector lane bridging them.
    """

    lanes: list[Lane]
    ids: dict[LaneKey, int]
    connectors: dict[tuple[int, int], int]

    def route_ids(self, keys: Iterable[LaneKey]) -> list[int]:
        """Lane ids of a sequence of highway-env lanes, with the connectors between them."""
        out: list[int] = []
        for k in keys:
            i = self.ids[k]
            if out and (out[-1], i) in self.connectors:
                out.append(self.connectors[(out[-1], i)])
            out.append(i)
        return out


def lanes_from_network(
    network,
    spacing: float = 1.0,
    in_junction: Callable[[LaneKey], bool] = lambda key: False,
    default_speed_limit: float = 30.0,
    gap: float = 1.0,
) -> SampledNetwork:
    """Sample a highway-env RoadNetwork into map-frame :class:`Lane` objects (see :class:`SampledNetwork`).
    ``in_junction`` flags connector lanes inside a junction."""
    keys = lane_keys(network)
    ids = {k: n for n, k in enumerate(keys)}
    sampled = {k: sample_lane(network.get_lane(k), spacing) for k in keys}
    succ = {k: [ids[s] for s in successor_keys(network, k)] for k in keys}
    extra: list[Lane] = []
    connectors: dict[tuple[int, int], int] = {}
    for k in keys:
        center, width = sampled[k]
        for n, j in enumerate(succ[k]):
            nxt_center, nxt_width = sampled[keys[j]]
            if np.linalg.norm(nxt_center[0] - center[-1]) <= gap:
                continue
            h0 = float(np.arctan2(*(center[-1] - center[-2])[::-1]))
            h1 = float(np.arctan2(*(nxt_center[1] - nxt_center[0])[::-1]))
            line = hermite_connector(center[-1], h0, nxt_center[0], h1, spacing)
            cid = len(keys) + len(extra)
            hl = network.get_lane(keys[j])
            limit = hl.speed_limit if hl.speed_limit is not None else default_speed_limit
            extra.append(
                Lane(
                    cid,
                    line,
                    0.5 * (width[-1] + nxt_width[0]),
                    (j,),
                    bool(in_junction(k) or in_junction(keys[j])),
                    float(limit),
                    ("none", "none"),
                )
            )
            connectors[(ids[k], j)] = cid
            succ[k][n] = cid
    lanes = []
    for k in keys:
        hl = network.get_lane(k)
        center, width = sampled[k]
        limit = hl.speed_limit if hl.speed_limit is not None else default_speed_limit
        lanes.append(
            Lane(
                lane_id=ids[k],
                centerline=center,
                width=width,
                successors=tuple(succ[k]),
                in_intersection=bool(in_junction(k)),
                speed_limit=float(limit),
                markings=(_marking(network, k, 0), _marking(network, k, 1)),
            )
        )
    return SampledNetwork(lanes + extra, ids, connectors)


def crop_lanes(lanes: Iterable[Lane], center: np.ndarray, radius: float, keep: Iterable[int] = ()) -> list[Lane]:
    """Lanes cut to the stretch within ``radius`` m of ``center`` (x, y); lanes entirely outside are
    dropped unless their id is in ``keep`` (then kept whole). Ids, successors and flags are unchanged."""
    c = np.asarray(center, np.float64)[:2]
    keep = set(keep)
    out = []
    for lane in lanes:
        inside = np.flatnonzero(np.linalg.norm(lane.centerline - c, axis=1) <= radius)
        if len(inside) >= 2 and (inside[0] > 0 or inside[-1] < len(lane.centerline) - 1):
            a, b = inside[0], inside[-1] + 1
            out.append(
                Lane(
                    lane.lane_id,
                    lane.centerline[a:b],
                    lane.width[a:b],
                    lane.successors,
                    lane.in_intersection,
                    lane.speed_limit,
                    lane.markings,
                )
            )
        elif len(inside) >= 2 or lane.lane_id in keep:
            out.append(lane)
    return out


class LaneMap:
    """Geometric queries on a lane list (map frame): locate a pose, find side lanes, follow successors."""

    def __init__(self, lanes: Iterable[Lane]):
        self.lanes = {lane.lane_id: lane for lane in lanes}
        self._s = {i: arc_length(lane.centerline) for i, lane in self.lanes.items()}

    def __contains__(self, lane_id: int) -> bool:
        return lane_id in self.lanes

    def length(self, lane_id: int) -> float:
        return float(self._s[lane_id][-1])

    def project(self, lane_id: int, xy: np.ndarray) -> tuple[float, float, float]:
        """``(s, d, heading)`` of a point on a lane (d > 0 left of the direction of travel)."""
        s, d, h = project_to_polyline(np.asarray(xy, np.float64)[:2], self.lanes[lane_id].centerline)
        return float(s), float(d), float(h)

    def locate(
        self, pose: np.ndarray, max_offset: float = 4.0, max_heading: float = np.pi / 3, among: Iterable[int] = ()
    ) -> tuple[int, float, float] | None:
        """The lane a pose ``(x, y, yaw)`` drives in: ``(lane_id, s, d)`` minimising lateral offset plus
        heading error, among lanes whose span covers the point; None if no lane is within
        ``max_offset`` m and ``max_heading`` rad. ``among`` restricts the search (empty: all lanes)."""
        best, best_cost = None, np.inf
        ids = list(among) or list(self.lanes)
        for i in ids:
            if i not in self.lanes:
                continue
            s, d, h = self.project(i, pose[:2])
            if s < -1.0 or s > self.length(i) + 1.0:
                continue
            dh = abs(float(wrap_angle(pose[2] - h)))
            if abs(d) > max_offset or dh > max_heading:
                continue
            cost = abs(d) + 2.0 * dh
            if cost < best_cost:
                best, best_cost = (i, s, d), cost
        return best

    def side_lane(self, lane_id: int, xy: np.ndarray, side: int) -> int | None:
        """The lane beside ``lane_id`` at point ``xy``, to the left (``side=+1``) or right (``-1``), going
        the same direction (heading within 30°, centre 0.6–1.5 lane widths away); None if there is none."""
        s, _, h = self.project(lane_id, xy)
        lane = self.lanes[lane_id]
        k = int(np.clip(np.searchsorted(self._s[lane_id], s), 0, len(lane.centerline) - 1))
        w = float(lane.width[k])
        probe = lane.centerline[k] + side * w * np.array([-np.sin(h), np.cos(h)])
        best, best_d = None, np.inf
        for j in self.lanes:
            if j == lane_id:
                continue
            sj, dj, hj = self.project(j, probe)
            if sj < 0.0 or sj > self.length(j) or abs(float(wrap_angle(hj - h))) > np.radians(30):
                continue
            _, d_center, _ = self.project(j, lane.centerline[k])
            if side * d_center > 0 or not 0.6 * w <= abs(d_center) <= 1.5 * w:
                continue
            if abs(dj) < best_d:
                best, best_d = j, abs(dj)
        return best

    def follow(self, lane_id: int, start_s: float, length: float, prefer: Iterable[int] = ()) -> list[int]:
        """Lane ids from ``lane_id`` onward covering ``length`` m after ``start_s``: at each fork the
        successor in ``prefer`` (a route) if any, else the one that keeps the heading best."""
        prefer = set(prefer)
        chain = [lane_id]
        remaining = length - (self.length(lane_id) - start_s)
        while remaining > 0:
            succ = [j for j in self.lanes[chain[-1]].successors if j in self.lanes and j not in chain]
            if not succ:
                break
            routed = [j for j in succ if j in prefer]
            if routed:
                nxt = routed[0]
            else:
                h_end = self.lanes[chain[-1]].headings[-1]
                nxt = min(succ, key=lambda j: abs(float(wrap_angle(self.lanes[j].headings[0] - h_end))))
            chain.append(nxt)
            remaining -= self.length(nxt)
        return chain

    def branches(self, lane_id: int, start_s: float, length: float, limit: int = 6) -> list[list[int]]:
        """Every lane chain (at most ``limit``) from ``lane_id`` that covers ``length`` m after ``start_s``
        or ends where the map ends: the paths a vehicle on the lane might take."""
        out: list[list[int]] = []
        stack = [([lane_id], length - (self.length(lane_id) - start_s))]
        while stack and len(out) < limit:
            chain, remaining = stack.pop()
            succ = [j for j in self.lanes[chain[-1]].successors if j in self.lanes and j not in chain]
            if remaining <= 0 or not succ:
                out.append(chain)
                continue
            stack.extend(([*chain, j], remaining - self.length(j)) for j in reversed(succ))
        return out

    def polyline(self, chain: list[int], start_s: float = 0.0, back: float = 5.0) -> np.ndarray:
        """Concatenated centerline (N, 2) of a lane chain, from ``back`` m behind ``start_s`` on the first
        lane; points of a lane that fall behind the previous lane's end are skipped so it never folds back."""
        first = self.lanes[chain[0]]
        s0 = self._s[chain[0]]
        keep = s0 >= start_s - back
        pts = [first.centerline[keep] if keep.sum() >= 2 else first.centerline[-2:]]
        end, heading = pts[0][-1], pts[0][-1] - pts[0][-2]
        for j in chain[1:]:
            c = self.lanes[j].centerline
            ahead = (c - end) @ heading > 0
            if ahead.any():
                tail = c[np.argmax(ahead) :]
                pts.append(tail)
                heading = tail[-1] - (tail[-2] if len(tail) >= 2 else end)
                end = tail[-1]
        line = np.concatenate(pts)
        seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
        return line[np.concatenate([[True], seg > 1e-6])]
