"""Expert driver on synthetic frames: follows the lane, avoids a stopped vehicle, obeys lane-change commands."""

import numpy as np
import pytest

from wamdiff_ros.sim.expert import Expert, blend_line, curvature_speed_cap, predict_agents
from wamdiff_ros.sim.roadnet import LaneMap
from wamdiff_ros.types import Agents, AgentType, EgoState, Lane, LogFrame


def _road(limit=25.0):
    x = np.arange(0.0, 401.0, 1.0)
    return [
        Lane(i, np.stack([x, np.full_like(x, y)], 1), 4.0, speed_limit=limit) for i, y in enumerate((4.0, 0.0, -4.0))
    ]


def _frame(agents=None, command="straight", route=(1,), speed=20.0):
    agents = agents if agents is not None else Agents.empty()
    ego = EgoState(pose=np.array([50.0, 0.0, 0.0]), velocity=np.array([speed, 0.0]))
    return LogFrame(0, "t", ego, agents, list(route), command, "", "highway")


def _stopped_car(x, y):
    return Agents([7], [int(AgentType.VEHICLE)], [[5.0, 2.0]], [[[x, y, 0.0]]], [[[0.0, 0.0]]], [[True]])


def test_free_road_keeps_lane_at_speed():
    plan = Expert().plan(_frame(), _road())
    end = plan.trajectory.poses[-1]
    assert abs(end[1]) < 0.3 and end[0] > 70.0
    assert plan.info["lane"] == "keep"


def test_stopped_vehicle_ahead_is_passed_or_braked_for():
    plan = Expert().plan(_frame(_stopped_car(110.0, 0.0)), _road())
    poses = plan.trajectory.poses
    assert plan.info["score"]["NC"] == 1.0
    passes = abs(poses[-1, 1]) > 2.0
    stops_short = poses[-1, 0] < 60.0 - 5.0
    assert passes or stops_short


@pytest.mark.parametrize(("command", "route", "sign"), [("lane_change_left", (0,), 1), ("lane_change_right", (2,), -1)])
def test_lane_change_command_moves_to_the_route_lane(command, route, sign):
    plan = Expert().plan(_frame(command=command, route=route), _road())
    assert np.sign(plan.trajectory.poses[-1, 1]) == sign and abs(plan.trajectory.poses[-1, 1]) > 2.0


def test_blend_line_starts_at_the_ego_and_merges():
    x = np.arange(0.0, 100.0, 1.0)
    line = np.stack([x, 0 * x], 1)
    out = blend_line(line, np.array([10.0, 3.0, 0.0]), 40.0)
    assert out[10, 1] == pytest.approx(3.0) and abs(out[60, 1]) < 1e-9
    assert np.all(np.diff(out[10:51, 1]) <= 1e-9)


def test_curvature_speed_cap():
    phi = np.linspace(0, np.pi, 300)
    circle = 20.0 * np.stack([np.sin(phi), 1 - np.cos(phi)], 1)
    assert curvature_speed_cap(circle, 0.0, 50.0, 2.0) == pytest.approx(np.sqrt(2.0 * 20.0), rel=0.05)
    x = np.arange(0.0, 100.0)
    assert curvature_speed_cap(np.stack([x, 0 * x], 1), 0.0, 50.0, 2.0) == np.inf


def test_predictions_follow_lane_branches():
    # a vehicle approaching a fork gets one hypothesis per branch besides constant velocity
    x = np.arange(0.0, 51.0)
    a = Lane(0, np.stack([x, 0 * x], 1), 4.0, successors=(1, 2))
    phi = np.linspace(0, np.pi / 2, 40)
    left = Lane(1, np.stack([50 + 15 * np.sin(phi), 15 * (1 - np.cos(phi))], 1), 4.0)
    right = Lane(2, np.stack([50 + 15 * np.sin(phi), -15 * (1 - np.cos(phi))], 1), 4.0)
    ag = Agents([3], [int(AgentType.VEHICLE)], [[5.0, 2.0]], [[[40.0, 0.0, 0.0]]], [[[8.0, 0.0]]], [[True]])
    pred = predict_agents(ag, 4.0, (0.0, 0.0), LaneMap([a, left, right]))
    assert len(pred) == 3 and pred.num_steps == 41
    ends = pred.poses[:, -1, 1]
    assert ends.max() > 5.0 and ends.min() < -5.0 and np.any(np.abs(ends) < 1e-6)


def test_lane_chain_polyline_survives_one_point_successors():
    x = np.arange(0.0, 21.0)
    a = Lane(0, np.stack([x, 0 * x], 1), 4.0, successors=(1,))
    b = Lane(1, np.array([[19.0, 0.0], [21.0, 0.0]]), 4.0, successors=(2,))  # only its last point is ahead
    c = Lane(2, np.stack([x + 22.0, 0 * x], 1), 4.0)
    line = LaneMap([a, b, c]).polyline([0, 1, 2], 10.0, back=2.0)
    assert np.all(np.diff(line[:, 0]) > 0) and line[-1, 0] == 42.0
