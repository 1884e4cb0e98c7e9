"""DAgger with expert takeover: the states a model leads to, labelled by the expert's driving.

A model trained on the expert's logs never sees the states its own mistakes lead to (hesitating in
front of a junction, creeping, drifting toward a parked car), so in closed loop it does not know how
to recover from them (Ross et al., DAgger; Kelly et al., HG-DAgger). Here the model drives
``drive_ticks``, then the expert takes over for ``takeover_ticks``, in turn to the episode's end. Each
takeover becomes an episode of its own in the bag (``<episode>/takeover<k>``): its first ticks are
states the model led to, and its logged future is the expert's recovery, so the dataset turns it into
samples like any expert log.

Both drivers plan every tick: the expert keeps its plan-to-plan consistency, and the model's planning
loop sees an unbroken stream of inputs (as a node beside a safety driver would).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wamdiff_ros.types import LogFrame, PlanResult


@dataclass(frozen=True)
class TakeoverSchedule:
    """Who drives which tick: the model ``drive_ticks``, then the expert ``takeover_ticks``, repeated.

    A takeover yields samples only for its ticks with a full trajectory horizon after them inside
    the takeover, so it must be longer than the horizon in ticks (:meth:`check_horizon`).
    """

    drive_ticks: int = 20
    takeover_ticks: int = 60

    def __post_init__(self):
        if self.drive_ticks < 1 or self.takeover_ticks < 1:
            raise ValueError(f"takeover schedule: expected drive and takeover ticks >= 1, got {self}")

    def check_horizon(self, horizon_ticks: int) -> None:
        """ValueError unless a takeover outlasts a trajectory horizon of ``horizon_ticks``."""
        if self.takeover_ticks <= horizon_ticks:
            raise ValueError(
                f"--takeover-ticks: expected more than the trajectory horizon ({horizon_ticks} ticks), "
                f"got {self.takeover_ticks}: a takeover that short yields no training sample"
            )

    def takeover(self, tick: int) -> int | None:
        """Index of the takeover that tick ``tick`` belongs to, None while the model drives."""
        period, phase = divmod(tick, self.drive_ticks + self.takeover_ticks)
        return period if phase >= self.drive_ticks else None


def takeover_episode(episode: str, index: int) -> str:
    """The recorded name of takeover ``index`` of ``episode``."""
    return f"{episode}/takeover{index}"


class TakeoverDriver:
    """A :func:`~wamdiff_ros.sim.episode.run_episode` driver that hands control between ``model`` and
    ``expert`` (both drivers) by ``schedule``; :attr:`takeover` is the current takeover's index (None
    while the model drives)."""

    def __init__(self, model, expert, schedule: TakeoverSchedule):
        self.model = model
        self.expert = expert
        self.schedule = schedule
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self.expert.reset()
        self.tick = 0
        self.takeover: int | None = None

    def plan(self, frame: LogFrame, lanes, images) -> PlanResult:
        expert = self.expert.plan(frame, lanes, images)
        model = self.model.plan(frame, lanes, images)
        self.takeover = self.schedule.takeover(self.tick)
        self.tick += 1
        if self.takeover is None:
            return model
        return dataclasses.replace(expert, info={**expert.info, "takeover": self.takeover})


__all__ = ["TakeoverDriver", "TakeoverSchedule", "takeover_episode"]
