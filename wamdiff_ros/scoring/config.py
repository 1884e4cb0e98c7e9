"""Scorer settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wamdiff_ros.control.bicycle import BicycleParams
from wamdiff_ros.control.lqr import LQRParams


@dataclass(frozen=True)
class ScorerConfig:
    """How :func:`wamdiff_ros.scoring.score` simulates and scores candidates.

    Attributes:
        bicycle: ego motion model (NAVSIM's Pacifica bicycle by default).
        lqr: tracker weights (NAVSIM's by default).
        raster_resolution: map raster cell size [m] (drivable area, lanes).
        junction_widening: junction (``in_intersection``) lanes count this much wider [m], so that a
            junction's interior is drivable as a whole, as NAVSIM's roadblock connectors make it; the
            world's expert plans with the same drivable area.
        raster_margin: the raster covers ``margin + horizon·max(ego speed, fastest speed limit)`` metres
            around the ego [m]; points beyond are off-road.
        ep_normalization: ``"reference"``: each candidate's progress is normalised by the better of its own
            masked progress and the PDM-Closed reference's (NAVSIM scores every submission together with
            the reference, so a candidate's EP does not depend on the rest of the batch); ``"batch"``: by the
            best of the whole batch and the reference. PDMS uses NAVSIM v1.1's EP rule, EPDMS v2's.
        use_reference: include the PDM-Closed reference in EP normalisation (NAVSIM does).
        human_filter: apply NAVSIM v2's false-positive filter to EPDMS using ``scene.human_trajectory``.
        physical_lateral_accel: comfort uses ``a_y = v·ω`` instead of NAVSIM's bicycle state (whose lateral
            acceleration is zero, so its lateral-acceleration bound rarely binds).
        keep_states: return the simulated states in :attr:`ScoreResult.states`.
    """

    bicycle: BicycleParams = field(default_factory=BicycleParams)
    lqr: LQRParams = field(default_factory=LQRParams)
    raster_resolution: float = 0.1
    junction_widening: float = 2.0
    raster_margin: float = 30.0
    ep_normalization: Literal["reference", "batch"] = "reference"
    use_reference: bool = True
    human_filter: bool = True
    physical_lateral_accel: bool = False
    keep_states: bool = False

    def __post_init__(self):
        if self.ep_normalization not in ("reference", "batch"):
            raise ValueError(
                f"ScorerConfig.ep_normalization: expected 'reference' or 'batch', got {self.ep_normalization!r}"
            )
        if not self.raster_resolution > 0:
            raise ValueError(f"ScorerConfig.raster_resolution: expected > 0 m, got {self.raster_resolution}")
        if not self.junction_widening >= 0:
            raise ValueError(f"ScorerConfig.junction_widening: expected >= 0 m, got {self.junction_widening}")
        if self.raster_margin < 0:
            raise ValueError(f"ScorerConfig.raster_margin: expected >= 0 m, got {self.raster_margin}")
