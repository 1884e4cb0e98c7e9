"""A discrete PID controller with integral clamping, for speed tracking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PIDGains:
    """Attributes: ``kp`` [1/s], ``ki`` [1/s²], ``kd`` [-] for a speed error in m/s giving m/s²;
    ``integral_limit`` bounds |∫e dt| [m] (anti wind-up)."""

    kp: float = 1.2
    ki: float = 0.1
    kd: float = 0.0
    integral_limit: float = 5.0

    def __post_init__(self):
        if min(self.kp, self.ki, self.kd) < 0 or self.integral_limit < 0:
            raise ValueError(f"PIDGains: expected non-negative gains and integral_limit, got {self}")


class PID:
    """``u = kp·e + ki·∫e + kd·de/dt``; call :meth:`reset` between episodes."""

    def __init__(self, gains: PIDGains | None = None):
        self.gains = gains or PIDGains()
        self.reset()

    def reset(self) -> None:
        self.integral = 0.0
        self.previous: float | None = None

    def step(self, error: float, dt: float) -> float:
        if not dt > 0:
            raise ValueError(f"PID.step.dt: expected > 0 s, got {dt}")
        g = self.gains
        self.integral = float(np.clip(self.integral + error * dt, -g.integral_limit, g.integral_limit))
        derivative = 0.0 if self.previous is None else (error - self.previous) / dt
        self.previous = float(error)
        return g.kp * error + g.ki * self.integral + g.kd * derivative
