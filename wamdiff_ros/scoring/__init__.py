"""NAVSIM-faithful driving scores (PDMS, EPDMS and their sub-metrics) and open-loop metrics."""

from wamdiff_ros.scoring.config import ScorerConfig
from wamdiff_ros.scoring.open_loop import open_loop_metrics
from wamdiff_ros.scoring.pdms import pdm_closed_reference, scene_key, score
from wamdiff_ros.scoring.reference import idm_proposals, route_centerline
from wamdiff_ros.scoring.result import ScoreResult

__all__ = [
    "ScoreResult",
    "ScorerConfig",
    "idm_proposals",
    "open_loop_metrics",
    "pdm_closed_reference",
    "route_centerline",
    "scene_key",
    "score",
]
