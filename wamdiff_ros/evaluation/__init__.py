"""Open-loop evaluation, in one place: :mod:`.open_loop` plans and scores logged frames and aggregates
them, :mod:`.runs` sets up the planners compared on one dataset, :mod:`.tasks` evaluates them as
fan-out tasks (one per run and episode), :mod:`.tables` prints them;
``wamdiff eval`` (:mod:`.eval_command`) and ``wamdiff replay`` (:mod:`.replay_command`) are the
command front-ends."""

from wamdiff_ros.evaluation.open_loop import FrameRecord, aggregate, evaluate_open_loop

__all__ = ["FrameRecord", "aggregate", "evaluate_open_loop"]
