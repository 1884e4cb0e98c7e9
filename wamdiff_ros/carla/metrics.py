"""Per-route metrics of a CARLA run in the CARLA leaderboard manner, and their JSON file; the score
itself is :mod:`wamdiff_ros.scoring.closed_loop`'s.

Driving score (leaderboard): ``score_composed = max(score_route · score_penalty, 0)`` per route, with
``score_route`` the route completion [%] and ``score_penalty`` the product of one coefficient per
infraction, averaged over routes for the global record. Coefficients and rules follow
carla-simulator/leaderboard ``leaderboard/utils/statistics_manager.py`` (leaderboard 2.x:
``PENALTY_VALUE_DICT`` collision with a pedestrian 0.50, with a vehicle 0.60, with the layout 0.65,
red light 0.70, stop sign 0.80; ``PENALTY_PERC_DICT`` outside-route-lanes ``[0, 'increases']``, i.e.
``score_penalty *= 1 - percentage / 100``) and https://leaderboard.carla.org/evaluation_v2_1.
Route deviation (more than 30 m from the route, the leaderboard's ``InRouteTest(offroad_max=30)``),
an agent blocked (below 0.1 m/s for 180 s, ``ActorSpeedAboveThresholdTest``) and the route timeout
(leaderboard 1.0 ``RouteScenario``: 0.8 s per metre of route + 8 s) end the route without a penalty;
the score keeps the completion reached.

Differences from the leaderboard, by necessity here: red lights are judged from the light CARLA says
governs the ego when it enters a junction (not the leaderboard's stop-line geometry); the
outside-lanes percentage counts distance driven off any driving lane (not wrong-lane driving); stop
signs, scenario timeouts, yielding to emergency vehicles and minimum speed are not scored (there are no
scenarios). Lane invasions (markings crossed) are recorded without a penalty, as in the leaderboard.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from wamdiff_ros.atomic import atomic_write_json
from wamdiff_ros.carla.routes import DenseRoute
from wamdiff_ros.geometry import project_to_polyline
from wamdiff_ros.scoring.closed_loop import PENALTIES, SHUTDOWN_EVENTS, driving_score, infraction_penalty

COLLISION_REPEAT_S = 5.0
"""A further contact with the same actor within this many seconds counts as the same collision."""


@dataclass(frozen=True)
class MetricsConfig:
    """Attributes:
    timeout_s_per_m, timeout_extra_s: route time budget = per-metre × length + extra [s/m, s].
    blocked_speed, blocked_time_s: slower than this for this long ends the route as blocked [m/s, s].
    deviation_m: farther than this from the route ends it as a deviation [m].
    progress_window_m: how far ahead of the last progress the ego is matched to the route [m].
    completion_threshold: completion at which the route counts as completed [0, 1].
    """

    timeout_s_per_m: float = 0.8
    timeout_extra_s: float = 8.0
    blocked_speed: float = 0.1
    blocked_time_s: float = 180.0
    deviation_m: float = 30.0
    progress_window_m: float = 30.0
    completion_threshold: float = 0.99


@dataclass
class TickFacts:
    """What one tick of the world showed about the ego.

    Attributes:
        time: since the route started [s].
        pose: (3,) base_link pose in the map frame.
        speed: [m/s].
        off_road: no driving lane under the ego.
        in_junction: the ego's lane point lies in a junction.
        red_light: id of a red traffic light governing the ego, or None.
        collisions: ``(other_type_id, other_id)`` per collision event this tick.
        lane_invasions: the crossed marking types (e.g. ``"Solid"``) per lane-invasion event this tick.
    """

    time: float
    pose: np.ndarray
    speed: float
    off_road: bool = False
    in_junction: bool = False
    red_light: int | None = None
    collisions: list[tuple[str, int]] = field(default_factory=list)
    lane_invasions: list[list[str]] = field(default_factory=list)


def collision_kind(type_id: str) -> str:
    """Leaderboard class of a collision from the other actor's blueprint id."""
    if type_id.startswith("walker."):
        return "collisions_pedestrian"
    if type_id.startswith("vehicle."):
        return "collisions_vehicle"
    return "collisions_layout"


class RouteMonitor:
    """Follows the ego along a :class:`DenseRoute`: progress, infractions and the reason the route ends."""

    def __init__(self, route: DenseRoute, config: MetricsConfig | None = None):
        self.route = route
        self.config = config or MetricsConfig()
        self.progress = 0.0
        self.infractions: dict[str, list[str]] = {k: [] for k in (*PENALTIES, "outside_route_lanes", *SHUTDOWN_EVENTS)}
        self.lane_invasions: list[list[str]] = []
        self.off_road_m = 0.0
        self.driven_m = 0.0
        self.elapsed = 0.0
        self.speeds: list[float] = []
        self._slow_since: float | None = None
        self._last_pose: np.ndarray | None = None
        self._last_contact: dict[int, float] = {}
        self._was_in_junction = False
        self._red_lights_run: set[int] = set()

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_s_per_m * self.route.length + self.config.timeout_extra_s

    @property
    def completion(self) -> float:
        """Route completion in [0, 1]."""
        return min(max(self.progress / max(self.route.length, 1e-9), 0.0), 1.0)

    def update(self, facts: TickFacts) -> str | None:
        """Account one tick; returns why the route ends now (``completed``, ``route_dev``,
        ``vehicle_blocked``, ``route_timeout``) or None."""
        pose = np.asarray(facts.pose, np.float64)
        t = float(facts.time)
        self.elapsed = t
        self.speeds.append(float(facts.speed))
        if self._last_pose is not None:
            step = float(np.linalg.norm(pose[:2] - self._last_pose[:2]))
            self.driven_m += step
            if facts.off_road:
                self.off_road_m += step
        self._last_pose = pose
        for type_id, other in facts.collisions:
            last = self._last_contact.get(int(other))
            self._last_contact[int(other)] = t
            if last is not None and t - last < COLLISION_REPEAT_S:
                continue
            self.infractions[collision_kind(type_id)].append(f"t={t:.2f}s: collision with {type_id} (id {other})")
        self.lane_invasions.extend(list(m) for m in facts.lane_invasions)
        entered = facts.in_junction and not self._was_in_junction
        if entered and facts.red_light is not None and facts.red_light not in self._red_lights_run:
            self._red_lights_run.add(facts.red_light)
            self.infractions["red_light"].append(f"t={t:.2f}s: entered a junction on red (light {facts.red_light})")
        self._was_in_junction = facts.in_junction

        self._advance(pose[:2])
        if self.completion >= self.config.completion_threshold:
            return "completed"
        gap = float(np.min(np.linalg.norm(self.route.points[:, :2] - pose[:2], axis=1)))
        if gap > self.config.deviation_m:
            self.infractions["route_dev"].append(f"t={t:.2f}s: {gap:.1f} m from the route")
            return "route_dev"
        if facts.speed < self.config.blocked_speed:
            self._slow_since = t if self._slow_since is None else self._slow_since
            if t - self._slow_since >= self.config.blocked_time_s:
                self.infractions["vehicle_blocked"].append(
                    f"t={t:.2f}s: below {self.config.blocked_speed} m/s since t={self._slow_since:.2f}s"
                )
                return "vehicle_blocked"
        else:
            self._slow_since = None
        if t >= self.timeout_s:
            self.infractions["route_timeout"].append(f"t={t:.2f}s: route timeout ({self.timeout_s:.1f} s)")
            return "route_timeout"
        return None

    def _advance(self, xy: np.ndarray) -> None:
        s = self.route.s
        lo = max(int(np.searchsorted(s, self.progress - 5.0)) - 1, 0)
        hi = min(int(np.searchsorted(s, self.progress + self.config.progress_window_m)) + 1, len(s))
        if hi - lo < 2:
            lo, hi = max(hi - 2, 0), max(hi, 2)
        s_local, d, _ = project_to_polyline(xy, self.route.points[lo:hi, :2])
        s_here = float(s[lo] + s_local)
        if abs(float(d)) <= self.config.deviation_m and s_here <= s[hi - 1] + 1.0:
            self.progress = min(max(self.progress, s_here), self.route.length)

    def record(self, reason: str) -> dict:
        """The route's record, leaderboard-shaped (scores in percent like the leaderboard's JSON)."""
        completion_pct = 100.0 if reason == "completed" else 100.0 * self.completion
        outside_pct = min(100.0 * self.off_road_m / max(self.route.length, 1e-9), 100.0)
        if outside_pct > 0:
            self.infractions["outside_route_lanes"] = [f"{outside_pct:.2f}% of the route length driven off the road"]
        counts = {k: len(v) for k, v in self.infractions.items()}
        penalty = infraction_penalty({k: v for k, v in counts.items() if k in PENALTIES}, outside_pct)
        speeds = np.asarray(self.speeds, np.float64)
        return {
            "route": self.route.name,
            "town": self.route.town,
            "status": "Completed" if reason == "completed" else "Failed",
            "reason": reason,
            "scores": {
                "score_route": round(completion_pct, 6),
                "score_penalty": round(penalty, 6),
                "score_composed": round(driving_score(completion_pct, penalty), 6),
            },
            "route_completion": completion_pct / 100.0,
            "infractions": self.infractions,
            "num_infractions": {k: n for k, n in counts.items()},
            "outside_route_lanes_pct": outside_pct,
            "lane_invasions": len(self.lane_invasions),
            "solid_line_crossings": sum(any("Solid" in m for m in inv) for inv in self.lane_invasions),
            "meta": {
                "route_length_m": self.route.length,
                "driven_m": self.driven_m,
                "duration_game_s": self.elapsed,
                "timeout_s": self.timeout_s,
                "mean_speed": float(speeds.mean()) if speeds.size else math.nan,
            },
        }


def global_record(records: list[dict]) -> dict:
    """Mean scores over routes and summed infraction counts (the leaderboard's global record)."""
    if not records:
        return {"routes": 0}
    scores = {k: float(np.mean([r["scores"][k] for r in records])) for k in records[0]["scores"]}
    counts: dict[str, int] = {}
    for r in records:
        for k, n in r["num_infractions"].items():
            counts[k] = counts.get(k, 0) + int(n)
    return {
        "routes": len(records),
        "status": "Completed" if all(r["status"] == "Completed" for r in records) else "Failed",
        "scores_mean": scores,
        "infractions": counts,
        "driving_score": scores["score_composed"],
        "route_completion": scores["score_route"],
        "infraction_penalty": scores["score_penalty"],
    }


def write_metrics(path: str | os.PathLike, records: list[dict], extra: dict | None = None) -> None:
    """``{"routes": [...], "global": {...}, **extra}`` to ``path``, atomically."""
    atomic_write_json(path, {"routes": records, "global": global_record(records), **(extra or {})})
