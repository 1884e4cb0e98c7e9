"""TrajMoE / GTRS family: a trajectory vocabulary clustered from training futures, scored per scene on
driving sub-metrics by vocabulary queries attending to scene tokens through sparse-MoE FFNs.

Network (:mod:`.net`, :mod:`.moe_ffn`), config (:mod:`.config`), vocabulary (:mod:`.vocabulary`),
planner (:mod:`.planner`), exported graph (:mod:`.graphs`), scorer labels (:mod:`.labels`), supervised
task (:mod:`.task`) and RL policy on the Gaussian score heads (:mod:`.policy`).
"""

from wamdiff_ros.planners.trajmoe.planner import TrajMoEPlanner, fresh_planner, load

__all__ = ["TrajMoEPlanner", "fresh_planner", "load"]
