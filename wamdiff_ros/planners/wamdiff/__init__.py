"""WAM-Diff family: masked discrete diffusion over trajectory tokens with adaptive fast/slow reasoning.

Everything the family owns lives here: its network (:mod:`.net`), config (:mod:`.config`), token
space and sequence layout (:mod:`.layout`, :mod:`.trajectory_tokenizer`), decoding
(:mod:`.masked_diffusion`), planner (:mod:`.planner`), exported graphs (:mod:`.graphs`) and the
backend stand-in they run behind (:mod:`.backend_net`), and its RL policy (:mod:`.policy`).
"""

from wamdiff_ros.planners.wamdiff.planner import WamDiffPlanner, fresh_planner, load

__all__ = ["WamDiffPlanner", "fresh_planner", "load"]
