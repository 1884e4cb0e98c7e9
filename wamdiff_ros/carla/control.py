"""The tracker's (accel, steer) -> ``carla.VehicleControl`` (throttle, steer, brake).

A stateless, hysteresis-free mapping (the speed PID in :class:`~wamdiff_ros.control.tracker.Tracker`
closes the loop, so the map only needs the right sign and scale):

- ``throttle = clip(accel / max_accel, 0, 1)`` for ``accel > 0``; ``brake = clip(-accel / max_decel, 0, 1)``
  for ``accel < 0``; never both.
- Standing still (``speed < standstill_speed``) with ``accel <= 0`` holds at least ``standstill_brake``
  so the car does not creep or roll.
- ``steer = clip(-δ / max_steer_angle, -1, 1)``: ROS steering is + left, CARLA's + right, normalised by
  the vehicle's maximum front-wheel angle.
- ``reverse`` and ``hand_brake`` are never set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wamdiff_ros.carla.frames import _carla

if TYPE_CHECKING:
    import carla


@dataclass(frozen=True)
class ControlLimits:
    """Attributes:
    max_steer_angle: front-wheel angle at steer = ±1 [rad] (the vehicle's physics control).
    max_accel: acceleration that full throttle stands for [m/s²].
    max_decel: deceleration that full brake stands for [m/s²].
    standstill_speed: below this speed the car counts as standing [m/s].
    standstill_brake: brake held while standing with no request to go [0, 1].
    """

    max_steer_angle: float
    max_accel: float = 3.0
    max_decel: float = 8.0
    standstill_speed: float = 0.1
    standstill_brake: float = 0.3

    def __post_init__(self):
        if not (0 < self.max_steer_angle < math.pi / 2):
            raise ValueError(f"ControlLimits.max_steer_angle: expected (0, π/2) rad, got {self.max_steer_angle}")
        if not (self.max_accel > 0 and self.max_decel > 0):
            raise ValueError(
                f"ControlLimits: expected max_accel > 0 and max_decel > 0 m/s², got {self.max_accel}, {self.max_decel}"
            )
        if not (0 <= self.standstill_brake <= 1 and self.standstill_speed >= 0):
            raise ValueError("ControlLimits: expected standstill_brake in [0, 1] and standstill_speed >= 0 m/s")


def control_values(accel: float, steer: float, speed: float, limits: ControlLimits) -> tuple[float, float, float]:
    """``(throttle, steer, brake)`` in CARLA's ranges for ``accel`` [m/s²], ``steer`` [rad, + left], ``speed`` [m/s]."""
    if not (math.isfinite(accel) and math.isfinite(steer) and math.isfinite(speed)):
        raise ValueError(f"control_values: expected finite accel/steer/speed, got {accel}, {steer}, {speed}")
    throttle = min(max(accel / limits.max_accel, 0.0), 1.0)
    brake = min(max(-accel / limits.max_decel, 0.0), 1.0)
    if accel <= 0 and abs(speed) < limits.standstill_speed:
        brake = max(brake, limits.standstill_brake)
    carla_steer = min(max(-steer / limits.max_steer_angle, -1.0), 1.0)
    return throttle, carla_steer, brake


def vehicle_control(accel: float, steer: float, speed: float, limits: ControlLimits) -> carla.VehicleControl:
    """:func:`control_values` as a ``carla.VehicleControl`` (forward gear, no hand brake)."""
    throttle, carla_steer, brake = control_values(accel, steer, speed, limits)
    return _carla().VehicleControl(
        throttle=throttle, steer=carla_steer, brake=brake, hand_brake=False, reverse=False, manual_gear_shift=False
    )
