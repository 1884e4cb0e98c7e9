"""Leaderboard-style route metrics: penalty arithmetic, progress, infractions, ends of a route, JSON."""

import json

import numpy as np
import pytest

from wamdiff_ros.carla.metrics import (
    PENALTIES,
    MetricsConfig,
    RouteMonitor,
    TickFacts,
    collision_kind,
    driving_score,
    global_record,
    infraction_penalty,
    write_metrics,
)
from wamdiff_ros.carla.routes import DenseRoute


def straight(length=100.0, junction=None) -> DenseRoute:
    x = np.arange(0.0, length + 1e-9, 2.0)
    pts = np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1)
    j = np.zeros(len(x), bool) if junction is None else (x >= junction[0]) & (x <= junction[1])
    return DenseRoute(pts, np.zeros(len(x)), j, np.zeros(len(x), np.int8), name="s", town="T")


def test_leaderboard_coefficients_and_arithmetic():
    assert PENALTIES == {
        "collisions_pedestrian": 0.5,
        "collisions_vehicle": 0.6,
        "collisions_layout": 0.65,
        "red_light": 0.7,
        "stop_infraction": 0.8,
    }
    p = infraction_penalty({"collisions_pedestrian": 1, "collisions_vehicle": 2})
    assert p == pytest.approx(0.5 * 0.6**2)
    assert infraction_penalty({"red_light": 1, "collisions_layout": 1}, outside_lanes_percentage=10.0) == pytest.approx(
        0.7 * 0.65 * 0.9
    )
    assert infraction_penalty({}) == 1.0 and infraction_penalty({}, 150.0) == 0.0
    assert driving_score(80.0, p) == pytest.approx(80.0 * 0.18)
    with pytest.raises(ValueError, match="unknown"):
        infraction_penalty({"speeding": 1})
    assert [collision_kind(t) for t in ("walker.pedestrian.0001", "vehicle.audi.tt", "static.prop.barrel")] == [
        "collisions_pedestrian",
        "collisions_vehicle",
        "collisions_layout",
    ]


def drive(monitor, speed=10.0, dt=0.1, steps=10_000, lateral=0.0, **facts):
    for k in range(steps):
        t = k * dt
        end = monitor.update(TickFacts(time=t, pose=np.array([speed * t, lateral, 0.0]), speed=speed, **facts))
        if end:
            return end, t
    return None, None


def test_completed_route_scores_completion_times_penalty(tmp_path):
    m = RouteMonitor(straight(100.0))
    m.update(TickFacts(0.0, np.array([0.0, 0.0, 0.0]), 10.0, collisions=[("vehicle.audi.tt", 5)]))
    m.update(TickFacts(0.1, np.array([1.0, 0.0, 0.0]), 10.0, collisions=[("vehicle.audi.tt", 5)]))  # same contact
    m.update(TickFacts(5.2, np.array([2.0, 0.0, 0.0]), 10.0, collisions=[("vehicle.audi.tt", 5)]))  # 5 s later: new
    m.update(TickFacts(5.3, np.array([3.0, 0.0, 0.0]), 10.0, collisions=[("walker.x", 9)], lane_invasions=[["Solid"]]))
    end, _ = drive(m)
    assert end == "completed"
    r = m.record(end)
    assert r["num_infractions"]["collisions_vehicle"] == 2 and r["num_infractions"]["collisions_pedestrian"] == 1
    assert r["scores"]["score_route"] == 100.0
    assert r["scores"]["score_penalty"] == pytest.approx(0.36 * 0.5)
    assert r["scores"]["score_composed"] == pytest.approx(18.0)
    assert r["lane_invasions"] == 1 and r["solid_line_crossings"] == 1 and r["status"] == "Completed"
    path = tmp_path / "m.json"
    write_metrics(path, [r, {**r, "scores": {"score_route": 50.0, "score_penalty": 1.0, "score_composed": 50.0}}])
    data = json.loads(path.read_text())
    assert data["global"]["driving_score"] == pytest.approx(34.0) and data["global"]["routes"] == 2
    assert data["global"]["infractions"]["collisions_vehicle"] == 4


def test_timeout_keeps_partial_completion():
    m = RouteMonitor(straight(100.0), MetricsConfig(timeout_s_per_m=0.02, timeout_extra_s=0.0))  # 2 s budget
    end, t = drive(m, speed=10.0)
    assert end == "route_timeout" and t == pytest.approx(2.0)
    r = m.record(end)
    assert r["scores"]["score_route"] == pytest.approx(20.0, abs=1.0) and r["scores"]["score_penalty"] == 1.0
    assert r["status"] == "Failed" and len(r["infractions"]["route_timeout"]) == 1


def test_blocked_deviation_red_light_and_off_road():
    m = RouteMonitor(straight(100.0), MetricsConfig(blocked_time_s=3.0))
    assert drive(m, speed=0.0)[0] == "vehicle_blocked"
    m = RouteMonitor(straight(100.0))
    assert drive(m, lateral=31.0)[0] == "route_dev"
    m = RouteMonitor(straight(100.0, junction=(40.0, 50.0)))
    for k in range(60):
        x = 1.0 * k
        m.update(
            TickFacts(0.1 * k, np.array([x, 0.0, 0.0]), 10.0, in_junction=40 <= x <= 50, red_light=3, off_road=x > 50)
        )
    r = m.record("completed")
    assert r["num_infractions"]["red_light"] == 1  # once per light, on entering the junction
    assert r["outside_route_lanes_pct"] == pytest.approx(9.0)  # 9 m of 100 m off the road
    assert r["scores"]["score_penalty"] == pytest.approx(0.7 * 0.91)


def test_progress_only_moves_forward_along_the_route():
    m = RouteMonitor(straight(100.0))
    m.update(TickFacts(0.0, np.array([20.0, 0.5, 0.0]), 5.0))
    assert m.progress == pytest.approx(20.0)
    m.update(TickFacts(0.1, np.array([10.0, 0.5, 0.0]), 5.0))  # reversing does not undo progress
    assert m.progress == pytest.approx(20.0)
    m.update(TickFacts(0.2, np.array([90.0, 0.0, 0.0]), 5.0))  # no jump beyond the matching window
    assert m.progress == pytest.approx(20.0)
    assert global_record([]) == {"routes": 0}
