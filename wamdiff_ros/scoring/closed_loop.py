"""Closed-loop driving metrics shared by every simulator (the embedded world, CARLA): the CARLA
leaderboard's infraction penalty and driving score.

``score_composed = max(score_route · score_penalty, 0)`` per route, with ``score_route`` the route
completion [%] and ``score_penalty`` the product of one coefficient per infraction
(carla-simulator/leaderboard ``leaderboard/utils/statistics_manager.py``, leaderboard 2.x
``PENALTY_VALUE_DICT``; outside-route-lanes ``score_penalty *= 1 - percentage / 100``).
"""

from __future__ import annotations

PENALTIES = {
    "collisions_pedestrian": 0.50,
    "collisions_vehicle": 0.60,
    "collisions_layout": 0.65,
    "red_light": 0.70,
    "stop_infraction": 0.80,
}
"""Leaderboard 2.x ``PENALTY_VALUE_DICT`` coefficients, by the leaderboard's infraction names."""

SHUTDOWN_EVENTS = ("route_dev", "vehicle_blocked", "route_timeout")
"""Infractions that end a route without a penalty (leaderboard names)."""


def infraction_penalty(counts: dict[str, int], outside_lanes_percentage: float = 0.0) -> float:
    """``Π coefficient^count`` over :data:`PENALTIES`, times ``1 - outside_lanes_percentage / 100``."""
    unknown = set(counts) - set(PENALTIES) - set(SHUTDOWN_EVENTS) - {"outside_route_lanes", "lane_invasions"}
    if unknown:
        raise ValueError(f"infraction_penalty.counts: unknown infraction(s) {sorted(unknown)}")
    penalty = 1.0
    for name, coefficient in PENALTIES.items():
        n = int(counts.get(name, 0))
        if n < 0:
            raise ValueError(f"infraction_penalty.counts[{name!r}]: expected >= 0, got {n}")
        penalty *= coefficient**n
    return penalty * (1.0 - min(max(float(outside_lanes_percentage), 0.0), 100.0) / 100.0)


def driving_score(route_completion_pct: float, penalty: float) -> float:
    """``max(score_route · score_penalty, 0)`` with the completion in percent."""
    return max(float(route_completion_pct) * float(penalty), 0.0)


__all__ = ["PENALTIES", "SHUTDOWN_EVENTS", "driving_score", "infraction_penalty"]
