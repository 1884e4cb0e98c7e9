"""Route centre line, IDM proposals and the PDM-Closed reference."""

from __future__ import annotations

import numpy as np
import pytest

from unit.helpers.scoring import SPEC, agent, scene, straight, straight_lane
from wamdiff_ros.scoring import ScorerConfig, idm_proposals, pdm_closed_reference, route_centerline, score
from wamdiff_ros.types import TrafficLight


def test_route_centerline_concatenates_route_lanes():
    """Lanes 0 (−50…20 m) and 2 (20…300 m) share the point x = 20: joined without repeating it."""
    lanes = [straight_lane(0, 0.0, x1=20.0), straight_lane(1, 4.0), straight_lane(2, 0.0, x0=20.0)]
    line = route_centerline(scene(lanes, route=[0, 2]))
    assert line[0, 0] == -50.0 and line[-1, 0] == 300.0
    assert (np.diff(line[:, 0]) > 0).all()
    fallback = route_centerline(scene(lanes, route=[]))
    assert fallback[0, 1] == 0.0


def test_idm_free_road_reaches_target_speed_fractions():
    """Empty road, limit 20 m/s, ego at 10 m/s: fraction 1.0 accelerates (IDM a ≤ 1.5 m/s² → at most
    10·4 + ½·1.5·16 = 52 m), fraction 0.5 (= 10 m/s, the current speed) holds ≈ 40 m, fraction 0.2 slows."""
    lane = straight_lane(0, 0.0, speed_limit=20.0)
    p = idm_proposals(scene([lane]), [lane.centerline], speed_fractions=(0.2, 0.5, 1.0))
    assert p.shape == (3, SPEC.num_poses, 3)
    end = p[:, -1, 0]
    assert end[0] < 40.0 and end[1] == pytest.approx(40.0, abs=0.5) and 40.0 < end[2] <= 52.0 + 1e-6
    np.testing.assert_allclose(p[..., 1:], 0.0, atol=1e-9)


def test_idm_stops_behind_stopped_car_and_red_light():
    """A stopped car 30 m ahead (rear at 28 m): every proposal keeps its front bumper (x + 4 m) short of it.
    A red light on the junction lane starting at 25 m: proposals stop before 25 m; green lets them pass."""
    lane = straight_lane(0, 0.0, speed_limit=15.0)
    sc = scene([lane], agents=[agent(30.0, 0.0)])
    p = idm_proposals(sc, [lane.centerline])
    assert (p[:, :, 0] + 4.0 < 28.0).all()
    lanes = [
        straight_lane(0, 0.0, x1=25.0, speed_limit=15.0),
        straight_lane(1, 0.0, x0=25.0, x1=45.0, in_intersection=True, speed_limit=15.0),
        straight_lane(2, 0.0, x0=45.0, speed_limit=15.0),
    ]
    line = route_centerline(scene(lanes, route=[0, 1, 2]))
    red = scene(lanes, route=[0, 1, 2], lights={1: np.full(41, int(TrafficLight.RED))})
    green = scene(lanes, route=[0, 1, 2], lights={1: np.full(41, int(TrafficLight.GREEN))})
    assert (idm_proposals(red, [line])[:, :, 0] + 4.0 < 25.0).all()
    assert idm_proposals(green, [line])[-1, -1, 0] + 4.0 > 25.0


def test_idm_rejects_bad_input():
    sc = scene([straight_lane(0, 0.0)])
    with pytest.raises(ValueError, match="centerlines"):
        idm_proposals(sc, [np.zeros((1, 2))])
    with pytest.raises(ValueError, match="speed_limits"):
        idm_proposals(sc, [sc.lanes[0].centerline], speed_limits=[1.0, 2.0])


def test_pdm_closed_reference_is_safe_and_normalises_ep():
    """With a slow lead car (4 m/s) 25 m ahead, the reference does not collide, and the human plan at
    the ego's 10 m/s (which rams the lead) scores NC 0 while the reference itself scores NC 1."""
    lane = straight_lane(0, 0.0, speed_limit=15.0)
    sc = scene([lane], agents=[agent(25.0, 0.0, vx=4.0)])
    ref = pdm_closed_reference(sc)
    assert ref.shape == (SPEC.num_poses, 3)
    r = score(np.stack([ref, straight(10.0)]), sc, ScorerConfig(human_filter=False))
    assert r.nc[0] == 1.0 and r.nc[1] == 0.0
    assert r.ep[0] == pytest.approx(1.0)
    assert np.isfinite(r.reference_progress)
