"""Open-loop metrics (UniAD / VAD conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from unit.helpers.scoring import agent, scene, straight, straight_lane
from wamdiff_ros.scoring import open_loop_metrics


def test_l2_at_and_up_to_horizons():
    """Plan 10 m/s, human 8 m/s (both straight): the error at t is 2·t m. UniAD L2 at 1/2/3 s = 2, 4, 6 m;
    VAD averages over the poses up to t: mean(1, 2) = 1.5, mean(1…4) = 2.5, mean(1…6) = 3.5 m;
    ADE = mean(1…8) = 4.5 m, FDE = 8 m."""
    sc = scene([straight_lane(0, 0.0)], speed=8.0)
    m = open_loop_metrics(straight(10.0), sc)
    expected = {"l2_1s": 2.0, "l2_2s": 4.0, "l2_3s": 6.0, "l2_avg_1s": 1.5, "l2_avg_2s": 2.5, "l2_avg_3s": 3.5}
    for k, v in expected.items():
        assert m[k][0] == pytest.approx(v), k
    assert (m["ade"][0], m["fde"][0]) == (pytest.approx(4.5), pytest.approx(8.0))


def test_box_collision_rate():
    """A stopped car with its rear at 25 m. Plan 10 m/s: front bumper 10·t + 4 reaches 25 m between 2.0 s
    (24 m) and 2.5 s (29 m). Collision indicator per pose: 0 at 0.5…2.0 s, 1 from 2.5 s on (the box is
    placed at the pose, no tracking). At 1 s / 2 s → 0; at 3 s → 1; rate up to 3 s = 2/6."""
    sc = scene([straight_lane(0, 0.0)], agents=[agent(27.0, 0.0)])
    m = open_loop_metrics(np.stack([straight(10.0), straight(5.0)]), sc)
    np.testing.assert_array_equal(m["col_1s"], [0.0, 0.0])
    np.testing.assert_array_equal(m["col_2s"], [0.0, 0.0])
    np.testing.assert_array_equal(m["col_3s"], [1.0, 0.0])
    np.testing.assert_allclose(m["col_avg_3s"], [2 / 6, 0.0])
