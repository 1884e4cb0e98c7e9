"""Model configuration of the TrajMoE family: plain dataclasses, validated, round-tripped through JSON.

The checkpoint's ``config.json`` holds :meth:`ModelConfig.to_dict`, including the fitted vocabulary
(``vocabulary``: V × T × 3 poses in base_link); a YAML file under ``config/models/`` holds the same tree
with the rig given as a rig file and no vocabulary (it is clustered from the training futures by
:meth:`~wamdiff_ros.planners.trajmoe.task.TrajMoETask.prepare`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.models.config import EncoderConfig, FamilyConfig, MoEConfig, TransformerConfig, tiny_rig
from wamdiff_ros.types import TrajectorySpec

METRICS: tuple[str, ...] = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "c")
"""Sub-metrics with a score head: the scorer's :class:`~wamdiff_ros.scoring.ScoreResult` fields (PDMS and
EPDMS terms)."""

GTRS_WEIGHTS: dict[str, float] = {"nc": 3.0, "dac": 3.0, "ddc": 3.0, "ttc": 2.0, "ep": 1.0, "c": 1.0}
"""GTRS's score-head loss weights; the other EPDMS terms get weight 1 unless configured."""


@dataclass
class ScoringConfig:
    """Score heads, their losses and how the plan is picked.

    Attributes:
        weights: sub-metric -> weight, both of its BCE loss and of its log-score in the plan's ranking
            (``Σ_m w_m log σ(ℓ_m) + imitation · log softmax(ℓ_im)``); a metric missing here weighs 1.
        imitation: weight of the imitation head (soft targets from the distance to the logged future).
        imitation_temperature: [m] softness of the imitation target ``softmax(-‖τ_v - τ*‖ / temperature)``.
        vocab_dropout: fraction of the vocabulary dropped per training sample (the entry nearest the
            logged future is always kept).
        inference_size: score only the first entries (vocabulary order is most-populous first); 0: all.
        candidates: best entries returned as ``PlanResult.candidates``.
        sigma_init: initial σ of the Gaussian score heads (RL samples from them).
    """

    weights: dict[str, float] = field(default_factory=lambda: dict(GTRS_WEIGHTS))
    imitation: float = 0.1
    imitation_temperature: float = 1.0
    vocab_dropout: float = 0.5
    inference_size: int = 0
    candidates: int = 16
    sigma_init: float = 0.1

    def __post_init__(self):
        unknown = sorted(set(self.weights) - set(METRICS))
        if unknown:
            raise ConfigError(f"scoring.weights: unknown metric(s) {unknown} (known: {list(METRICS)})")
        if any(float(w) < 0 for w in self.weights.values()) or self.imitation < 0:
            raise ConfigError(f"scoring: weights must be >= 0, got {self.weights}, imitation {self.imitation}")
        if not 0 <= self.vocab_dropout < 1:
            raise ConfigError(f"scoring.vocab_dropout: expected in [0, 1), got {self.vocab_dropout}")
        if self.inference_size < 0 or self.candidates < 1:
            raise ConfigError(f"scoring: inference_size >= 0 and candidates >= 1 required, got {self}")
        if self.imitation_temperature <= 0 or self.sigma_init <= 0:
            raise ConfigError("scoring: imitation_temperature and sigma_init must be > 0")

    def weight(self, metric: str) -> float:
        return float(self.weights.get(metric, 1.0))


@dataclass
class ModelConfig(FamilyConfig):
    """Everything needed to rebuild a TrajMoE model and its planner from a checkpoint.

    Attributes:
        rig: the camera rig the model was trained with (:meth:`wamdiff_ros.rig.Rig.to_dict`).
        vocab_size: vocabulary entries V (clusters of the training futures).
        vocabulary: V × T × 3 poses in base_link [m, m, rad], most-populous cluster first (empty until
            fitted; an untrained model gets a fan of constant-turn paths).
        mirror_futures: cluster the training futures together with their left-right mirror images.
        decoder_layers: vocabulary-query blocks (cross-attention to the scene tokens, then a sparse-MoE FFN).
        moe: ``token_choice`` routing: ``num_experts`` private FFN experts + 1 shared, ``top_k``,
            ``balance_weight`` of CV²(importance) + CV²(load) summed over layers; ``rank`` is unused.
    """

    FAMILY: ClassVar[str] = "trajmoe"

    rig: dict
    family: str = "trajmoe"
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    vocab_size: int = 4096
    vocabulary: list = field(default_factory=list)
    mirror_futures: bool = True
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    transformer: TransformerConfig = field(default_factory=lambda: TransformerConfig(d_model=64, layers=1, heads=2))
    decoder_layers: int = 2
    moe: MoEConfig = field(default_factory=lambda: MoEConfig(routing="token_choice", num_experts=4, top_k=2))
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def __post_init__(self):
        from wamdiff_ros.rig import Rig

        self.rig_obj = Rig.from_dict(self.rig, "model config rig")
        if self.moe.routing != "token_choice":
            raise ConfigError(f"trajmoe moe.routing: expected 'token_choice', got {self.moe.routing!r}")
        if self.vocab_size < 2 or self.decoder_layers < 1:
            raise ConfigError(f"trajmoe: vocab_size >= 2 and decoder_layers >= 1 required, got {self}")
        if self.vocabulary and len(self.vocabulary) != self.vocab_size:
            raise ConfigError(f"trajmoe vocabulary: expected {self.vocab_size} entries, got {len(self.vocabulary)}")

    @property
    def inference_size(self) -> int:
        n = self.scoring.inference_size
        return self.vocab_size if n == 0 else min(n, self.vocab_size)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike = "models/trajmoe_small.yaml", rig: dict | None = None) -> ModelConfig:
        """Load ``config/models/*.yaml``; ``rig:`` names a rig file."""
        from wamdiff_ros.rig import load_rig

        data = dict(load_yaml(path))
        if rig is None:
            rig_ref = data.get("rig", "rigs/default.yaml")
            rig = load_rig(rig_ref).to_dict() if isinstance(rig_ref, str) else rig_ref
        data["rig"] = rig
        return cls.from_dict(data, str(path))


def tiny_config(**overrides) -> ModelConfig:
    """A small config on a 2-camera 64×32 rig with 64 vocabulary entries, for unit tests."""
    parts = {
        "rig": tiny_rig(),
        "vocab_size": 64,
        "encoder": EncoderConfig(stem_channels=4, channels=(8,), history=2),
        "transformer": TransformerConfig(d_model=32, layers=1, heads=2, mlp_ratio=2.0),
        "decoder_layers": 2,
        "moe": MoEConfig(routing="token_choice", num_experts=4, top_k=2, balance_weight=0.01),
        "scoring": ScoringConfig(candidates=4),
    }
    parts.update(overrides)
    return ModelConfig(**parts)


__all__ = ["GTRS_WEIGHTS", "METRICS", "ModelConfig", "ScoringConfig", "tiny_config"]
