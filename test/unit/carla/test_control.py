"""(accel, steer) -> carla.VehicleControl: ranges, signs, no throttle and brake together, never reverse."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

carla = pytest.importorskip("carla")

from wamdiff_ros.carla.control import ControlLimits, control_values, vehicle_control  # noqa: E402

LIMITS = ControlLimits(max_steer_angle=math.radians(70.0), max_accel=3.0, max_decel=8.0)


@settings(max_examples=300, deadline=None)
@given(st.floats(-50, 50), st.floats(-3, 3), st.floats(0, 40))
def test_ranges_and_exclusivity(accel, steer, speed):
    throttle, s, brake = control_values(accel, steer, speed, LIMITS)
    assert 0.0 <= throttle <= 1.0 and 0.0 <= brake <= 1.0 and -1.0 <= s <= 1.0
    assert throttle == 0.0 or brake == 0.0
    if accel > 0:
        assert throttle == pytest.approx(min(accel / 3.0, 1.0))
    if accel < 0 and speed >= LIMITS.standstill_speed:
        assert brake == pytest.approx(min(-accel / 8.0, 1.0))
    assert s == pytest.approx(max(min(-steer / math.radians(70.0), 1.0), -1.0))


def test_signs_saturation_and_standstill():
    assert control_values(1.5, 0.0, 5.0, LIMITS) == pytest.approx((0.5, 0.0, 0.0))
    assert control_values(-4.0, 0.0, 5.0, LIMITS) == pytest.approx((0.0, 0.0, 0.5))
    assert control_values(100.0, 5.0, 5.0, LIMITS) == pytest.approx((1.0, -1.0, 0.0))  # left = CARLA negative
    assert control_values(0.0, -0.2, 5.0, LIMITS)[1] > 0  # right = CARLA positive
    assert control_values(0.0, 0.0, 0.0, LIMITS)[2] == pytest.approx(LIMITS.standstill_brake)  # hold
    assert control_values(0.5, 0.0, 0.0, LIMITS)[2] == 0.0  # a request to go releases the brake


def test_vehicle_control_is_forward_only():
    c = vehicle_control(-20.0, 0.3, 3.0, LIMITS)
    assert isinstance(c, carla.VehicleControl)
    assert c.brake == pytest.approx(1.0) and c.throttle == 0.0
    assert not c.reverse and not c.hand_brake and not c.manual_gear_shift
    assert c.steer == pytest.approx(-0.3 / math.radians(70.0), abs=1e-6)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        control_values(math.nan, 0.0, 1.0, LIMITS)
    with pytest.raises(ValueError, match="max_steer_angle"):
        ControlLimits(max_steer_angle=0.0)
    with pytest.raises(ValueError, match="max_accel"):
        ControlLimits(max_steer_angle=0.5, max_accel=-1.0)
