"""Routes for the CARLA bridge: files, tracing on the road network, and route -> command / instruction.

Route files (``config/carla/routes/*.yaml`` or the CARLA leaderboard's XML) give key points; the
session traces them into a dense lane-level route on the map (:func:`trace_route`, an A* over CARLA
waypoints that may change lanes). The dense route drives the navigation command the planner sees:
``lane_change_left/right`` before a lane change, ``left / straight / right`` before and through a
junction (from the heading change across it, as :func:`wamdiff_ros.sim.language.turn_of` decides it
for the embedded world), else ``straight``; the instruction text comes from the same templates.

YAML format (coordinates in the frame ``frame`` names: ``carla`` for CARLA world coordinates as CARLA
tools and leaderboard files print them, ``map`` for the bridge's REP-103 map frame)::

    frame: carla
    routes:
      - name: my_route
        town: Town10HD_Opt            # optional
        weather: ClearNoon            # optional: a carla.WeatherParameters preset or a mapping of its fields
        waypoints: [[x, y, z], ...]   # z optional

Leaderboard XML: ``<routes><route id town>`` with ``<waypoints><position x y z/>`` (leaderboard 2.x,
weather from the ``<weathers>`` entry with the lowest ``route_percentage``) or ``<waypoint x y z .../>``
children (leaderboard 1.0); a ``weather="<preset>"`` attribute on ``<route>`` is also read.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.carla.frames import location_to_ros, ros_to_location, vector_to_ros
from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.geometry import arc_length
from wamdiff_ros.paths import resolve
from wamdiff_ros.sim.language import instruction, turn_of

FRAMES = ("carla", "map")


@dataclass(frozen=True)
class RouteSpec:
    """A route as a file gives it.

    Attributes:
        name: unique within its file.
        keypoints: (N>=1, 3) points to pass, in the map frame (REP-103) [m].
        town: CARLA map name, or "" for "whatever the parameter / server says".
        weather: a ``carla.WeatherParameters`` preset name, a mapping of its fields, or None.
        source: file the route came from.
    """

    name: str
    keypoints: np.ndarray
    town: str = ""
    weather: str | dict | None = None
    source: str = "<route>"


@dataclass
class DenseRoute:
    """A route traced on the lanes, one point every few metres.

    Attributes:
        points: (N>=2, 3) lane-centre points in the map frame [m].
        yaw: (N,) lane heading at each point [rad, map frame].
        junction: (N,) True where the point lies inside a junction.
        lane_change: (N,) +1 / -1 where the step from point i to i+1 changes to the left / right lane, else 0.
        name, town, weather: from the :class:`RouteSpec`.
    """

    points: np.ndarray
    yaw: np.ndarray
    junction: np.ndarray
    lane_change: np.ndarray
    name: str = "route"
    town: str = ""
    weather: str | dict | None = None
    s: np.ndarray = field(init=False)

    def __post_init__(self):
        self.points = np.asarray(self.points, np.float64).reshape(-1, 3)
        n = len(self.points)
        self.yaw = np.asarray(self.yaw, np.float64).reshape(-1)
        self.junction = np.asarray(self.junction, bool).reshape(-1)
        self.lane_change = np.asarray(self.lane_change, np.int8).reshape(-1)
        if n < 2 or not (len(self.yaw) == len(self.junction) == len(self.lane_change) == n):
            raise ValueError(
                f"DenseRoute {self.name!r}: expected N>=2 points with N yaws, junction and lane-change flags, got "
                f"{n}, {len(self.yaw)}, {len(self.junction)}, {len(self.lane_change)}"
            )
        if not np.isfinite(self.points).all():
            raise ValueError(f"DenseRoute {self.name!r}: non-finite points")
        self.s = arc_length(self.points[:, :2])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def junction_runs(self) -> list[tuple[int, int, str]]:
        """``(first, end, turn)`` per stretch of junction points ``[first, end)``; turn is left/straight/right."""
        runs = []
        flags = np.concatenate([[False], self.junction, [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(flags) == 1)
        ends = np.flatnonzero(np.diff(flags) == -1)
        for a, b in zip(starts, ends):
            before = self.yaw[max(a - 1, 0)]
            after = self.yaw[min(b, len(self.yaw) - 1)]
            runs.append((int(a), int(b), turn_of(before, after)))
        return runs

    def command_at(
        self, s: float, junction_lookahead: float = 30.0, lane_change_lookahead: float = 20.0
    ) -> tuple[str, str]:
        """Command and instruction for an ego ``s`` metres along the route.

        The nearest upcoming event wins: a lane change starting within ``lane_change_lookahead``, or a
        junction whose entry lies within ``junction_lookahead`` (kept until its exit is passed).
        """
        events: list[tuple[float, str, str]] = []
        for j in np.flatnonzero(self.lane_change):
            if s - 2.0 <= self.s[j] <= s + lane_change_lookahead:
                cmd = "lane_change_left" if self.lane_change[j] > 0 else "lane_change_right"
                events.append((float(self.s[j]), cmd, instruction(cmd, "any")))
                break
        for a, b, turn in self.junction_runs():
            if self.s[a] <= s + junction_lookahead and self.s[b - 1] >= s:
                events.append((float(self.s[a]), turn, instruction(turn, "intersection", junction_ahead=True)))
                break
        if not events:
            return "straight", instruction("straight", "any")
        _, cmd, text = min(events, key=lambda e: e[0])
        return cmd, text


# ---- files -----------------------------------------------------------------------------------------


def load_routes(path: str | os.PathLike) -> list[RouteSpec]:
    """Routes of a YAML (``.yaml``/``.yml``) or leaderboard XML (``.xml``) file (a path, or under ``config/``)."""
    p = resolve(path)
    if p.suffix.lower() == ".xml":
        return parse_leaderboard_xml(p.read_text(), str(p))
    if p.suffix.lower() in (".yaml", ".yml"):
        return parse_routes_yaml(load_yaml(p), str(p))
    raise ConfigError(f"{path}: expected a .yaml/.yml route file or a leaderboard .xml file")


def select_routes(routes: list[RouteSpec], names: str) -> list[RouteSpec]:
    """The routes named in the comma-separated ``names`` (in that order); all of them for ``""``."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        return list(routes)
    by_name = {r.name: r for r in routes}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise ConfigError(f"route_names: no route(s) {missing} (known: {sorted(by_name)})")
    return [by_name[n] for n in wanted]


def parse_routes_yaml(data: dict, source: str = "<yaml>") -> list[RouteSpec]:
    frame = data.get("frame", "carla")
    if frame not in FRAMES:
        raise ConfigError(f"{source}: frame: expected one of {FRAMES}, got {frame!r}")
    raw = data.get("routes")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: 'routes' must be a non-empty list")
    out = []
    for i, r in enumerate(raw):
        where = f"{source}: routes[{i}]"
        if not isinstance(r, dict) or "waypoints" not in r:
            raise ConfigError(f"{where}: expected a mapping with 'waypoints'")
        pts = []
        for k, w in enumerate(r["waypoints"] or []):
            if not (isinstance(w, list | tuple) and len(w) in (2, 3)):
                raise ConfigError(f"{where}.waypoints[{k}]: expected [x, y] or [x, y, z], got {w!r}")
            x, y, z = (float(v) for v in (*w, 0.0)[:3])
            pts.append(vector_to_ros(x, y, z) if frame == "carla" else np.array([x, y, z]))
        weather = r.get("weather")
        if weather is not None and not isinstance(weather, str | dict):
            raise ConfigError(f"{where}.weather: expected a preset name or a mapping, got {weather!r}")
        out.append(_spec(str(r.get("name", f"route_{i}")), pts, str(r.get("town", "") or ""), weather, where))
    _unique(out, source)
    return out


def parse_leaderboard_xml(text: str, source: str = "<xml>") -> list[RouteSpec]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ConfigError(f"{source}: not valid XML: {e}") from e
    if root.tag != "routes":
        raise ConfigError(f"{source}: expected a <routes> root element, got <{root.tag}>")
    out = []
    for i, route in enumerate(root.iter("route")):
        where = f"{source}: route {route.get('id', i)}"
        nodes = route.findall("waypoints/position") or route.findall("waypoint")
        try:
            pts = [vector_to_ros(float(n.get("x")), float(n.get("y")), float(n.get("z", 0.0))) for n in nodes]
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: waypoint without numeric x/y: {e}") from e
        weather: str | dict | None = route.get("weather")
        entries = route.findall("weathers/weather")
        if entries:
            first = min(entries, key=lambda w: float(w.get("route_percentage", 0.0)))
            weather = {k: float(v) for k, v in first.attrib.items() if k != "route_percentage"}
        out.append(_spec(f"route_{route.get('id', i)}", pts, route.get("town", ""), weather, where))
    if not out:
        raise ConfigError(f"{source}: no <route> elements")
    _unique(out, source)
    return out


def _spec(name: str, pts: list, town: str, weather, where: str) -> RouteSpec:
    if not pts:
        raise ConfigError(f"{where}: no waypoints")
    keypoints = np.array(pts, np.float64).reshape(-1, 3)
    if not np.isfinite(keypoints).all():
        raise ConfigError(f"{where}: non-finite waypoint coordinates")
    return RouteSpec(name=name, keypoints=keypoints, town=town, weather=weather, source=where)


def _unique(routes: list[RouteSpec], source: str) -> None:
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: route names must be unique, got {names}")


# ---- tracing on the map (CARLA waypoints, duck-typed) ------------------------------------------------


class RouteError(RuntimeError):
    """No lane-level route connects the key points."""


def _xy(wp) -> np.ndarray:
    return location_to_ros(wp.transform.location)[:2]


def _key(wp, step: float) -> tuple:
    return (wp.road_id, wp.section_id, wp.lane_id, round(wp.s / (step / 2)))


def _is_driving(wp) -> bool:
    import carla

    return wp is not None and wp.lane_type == carla.LaneType.Driving


def _successors(wp, step: float, lane_change_cost: float):
    import carla

    for nxt in wp.next(step):
        yield nxt, step, 0
    for side, getter, allowed in (
        (1, wp.get_left_lane, (carla.LaneChange.Left, carla.LaneChange.Both)),
        (-1, wp.get_right_lane, (carla.LaneChange.Right, carla.LaneChange.Both)),
    ):
        if wp.is_junction or wp.lane_change not in allowed:
            continue
        other = getter()
        if _is_driving(other) and other.lane_id * wp.lane_id > 0:
            for nxt in other.next(step):
                yield nxt, step + lane_change_cost, side


def _search(start, goal, step: float, lane_change_cost: float, max_nodes: int) -> list[tuple[object, int]]:
    """A* from waypoint ``start`` to within ``step`` of ``goal``; ``[(waypoint, lane_change_into_it)]``."""
    goal_xy = _xy(goal)
    counter = itertools.count()
    start_key = _key(start, step)
    parents: dict = {start_key: (None, start, 0)}
    best = {start_key: 0.0}
    heap = [(float(np.linalg.norm(_xy(start) - goal_xy)), next(counter), 0.0, start_key, start)]
    while heap:
        _, _, g, key, wp = heapq.heappop(heap)
        if g > best.get(key, math.inf):
            continue
        if np.linalg.norm(_xy(wp) - goal_xy) <= step and (wp.road_id, wp.lane_id) == (goal.road_id, goal.lane_id):
            chain = []
            while key is not None:
                parent, w, side = parents[key]
                chain.append((w, side))
                key = parent
            return chain[::-1]
        if len(parents) > max_nodes:
            break
        for nxt, cost, side in _successors(wp, step, lane_change_cost):
            k = _key(nxt, step)
            ng = g + cost
            if ng < best.get(k, math.inf):
                best[k] = ng
                parents[k] = (key, nxt, side)
                h = float(np.linalg.norm(_xy(nxt) - goal_xy))
                heapq.heappush(heap, (ng + h, next(counter), ng, k, nxt))
    raise RouteError(
        f"no lane-level route from ({_xy(start)[0]:.1f}, {_xy(start)[1]:.1f}) to ({goal_xy[0]:.1f}, {goal_xy[1]:.1f}) "
        f"(map frame) within {max_nodes} waypoints"
    )


def _dense(chain: list[tuple[object, int]], spec_name: str, town: str, weather) -> DenseRoute:
    pts = np.array([location_to_ros(w.transform.location) for w, _ in chain])
    yaw = np.array([-math.radians(w.transform.rotation.yaw) for w, _ in chain])
    junction = np.array([bool(w.is_junction) for w, _ in chain])
    change = np.zeros(len(chain), np.int8)
    for i in range(1, len(chain)):
        change[i - 1] = chain[i][1]
    return DenseRoute(pts, yaw, junction, change, name=spec_name, town=town, weather=weather)


def snap(cmap, point) -> object:
    """The driving-lane waypoint nearest a map-frame point; RouteError when there is none."""
    import carla

    wp = cmap.get_waypoint(ros_to_location(point), True, carla.LaneType.Driving)
    if wp is None:
        raise RouteError(f"no driving lane near ({point[0]:.1f}, {point[1]:.1f}) (map frame)")
    return wp


def trace_route(
    cmap, spec: RouteSpec, step: float = 2.0, lane_change_cost: float = 10.0, max_nodes: int = 200_000
) -> DenseRoute:
    """Trace ``spec``'s key points on the lanes of a ``carla.Map`` (one point every ``step`` m).

    A single key point is extended along its lane by 200 m (the lane's successors, first branch).
    """
    if not step > 0:
        raise ValueError(f"trace_route.step: expected > 0 m, got {step}")
    wps = [snap(cmap, k) for k in spec.keypoints]
    if len(wps) == 1:
        return generate_route(cmap, wps[0], 200.0, np.random.default_rng(0), step, spec.name, spec.town, spec.weather)
    chain = [(wps[0], 0)]
    for a, b in itertools.pairwise(wps):
        chain += _search(a, b, step, lane_change_cost, max_nodes)[1:]
    return _dense(chain, spec.name, spec.town, spec.weather)


def generate_route(
    cmap,
    start,
    length: float,
    rng: np.random.Generator,
    step: float = 2.0,
    name: str = "generated",
    town: str = "",
    weather=None,
) -> DenseRoute:
    """A route of ``length`` m following the lanes from waypoint ``start``, junction branches drawn from ``rng``."""
    chain = [(start, 0)]
    travelled = 0.0
    wp = start
    while travelled < length:
        options = wp.next(step)
        if not options:
            break
        wp = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
        chain.append((wp, 0))
        travelled += step
    if len(chain) < 2:
        raise RouteError(f"the lane at ({_xy(start)[0]:.1f}, {_xy(start)[1]:.1f}) (map frame) has no successor")
    return _dense(chain, name, town, weather)
