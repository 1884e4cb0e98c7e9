"""Evaluation, in one place.

Open loop: :mod:`.open_loop` plans and scores logged frames, :mod:`.aggregate` sums them up as they
arrive, :mod:`.runs` sets up the planners compared on one dataset, :mod:`.tasks` evaluates them as
fan-out tasks (one per run and episode), :mod:`.tables` prints them; ``wamdiff eval``
(:mod:`.eval_command`) and ``wamdiff replay`` (:mod:`.replay_command`) are the command front-ends.

Closed loop: :mod:`.loop_driver` drives the embedded world with a planner through the planner node's
loop, :mod:`.closed_loop` runs episodes on fresh seeds against the expert and sums them up;
``wamdiff closedloop`` (:mod:`.closed_loop_command`). :mod:`.compare` and ``wamdiff compare``
(:mod:`.compare_command`) put models and baselines side by side, open and closed loop."""

from wamdiff_ros.evaluation.aggregate import RunningAggregate, aggregate
from wamdiff_ros.evaluation.open_loop import FrameRecord, evaluate_open_loop

__all__ = ["FrameRecord", "RunningAggregate", "aggregate", "evaluate_open_loop"]
