"""DiffusionDrive(V2) family: truncated diffusion over k-means trajectory anchors.

Its parts: anchors (:mod:`.anchors`, k-means and coverage), the DDIM noise scheduler
(:mod:`.scheduler`), network (:mod:`.net`: scene encoder, anchor decoder, classifier, selector heads),
config (:mod:`.config`), planner (:mod:`.planner`), exported graphs (:mod:`.graphs`), supervised task
(:mod:`.task`) and anchor GRPO policy with multiplicative noise (:mod:`.policy`).
"""

from wamdiff_ros.planners.diffusiondrive.planner import DiffusionDrivePlanner, fresh_planner, load

__all__ = ["DiffusionDrivePlanner", "fresh_planner", "load"]
