"""Model configuration of the AutoVLA family: dataclasses, validated, round-tripped through JSON.

``config/models/autovla_small.yaml`` holds the tree minus the vocabulary and the codebook; a checkpoint's
``config.json`` holds all of it (the codebook's primitives are fitted by ``SupervisedTask.prepare``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.models.config import EncoderConfig, FamilyConfig, TransformerConfig, default_vocabulary, tiny_rig
from wamdiff_ros.planners.gate import GateConfig
from wamdiff_ros.types import TrajectorySpec

FAMILY = "autovla"


@dataclass
class CodebookConfig:
    """K-disk action codebook.

    Attributes:
        size: number of action tokens K (token 0 = no motion).
        tolerance: K-disk radius on the max corner distance [m].
        box_length, box_width: vehicle box whose corners are compared [m].
        seed: order in which K-disk visits the primitives.
        primitives: the fitted (K, 3) primitives (Δx, Δy [m], Δθ [rad]); empty until fitted (an untrained
            model then uses a grid of straight primitives so it can run).
    """

    size: int = 2048
    tolerance: float = 0.05
    box_length: float = 4.8
    box_width: float = 2.0
    seed: int = 0
    primitives: list = field(default_factory=list)

    def __post_init__(self):
        if self.size < 2 or not self.tolerance > 0 or not (self.box_length > 0 and self.box_width > 0):
            raise ConfigError(f"codebook: expected size >= 2, tolerance > 0 and a positive box, got size={self.size}")
        self.primitives = [[float(v) for v in p] for p in self.primitives]
        if any(len(p) != 3 for p in self.primitives) or len(self.primitives) > self.size:
            raise ConfigError(f"codebook.primitives: expected at most {self.size} rows of (dx, dy, dtheta)")


@dataclass
class LayoutConfig:
    """Sequence after the scene tokens: prompt (command + instruction, padded), then the answer
    ``[THINK] reasoning… [ACT] actions…`` or ``[ACT] actions…``.

    Attributes:
        prompt_len: prompt tokens.
        reasoning_len: most reasoning words before ``[ACT]`` is forced.
    """

    prompt_len: int = 16
    reasoning_len: int = 72

    def __post_init__(self):
        if self.prompt_len < 2 or self.reasoning_len < 1:
            raise ConfigError(f"layout: expected prompt_len >= 2 and reasoning_len >= 1, got {self}")


@dataclass
class LossConfig:
    """Supervised loss: CE on the mode token and action tokens + ``reasoning_weight`` · CE on reasoning."""

    reasoning_weight: float = 0.5

    def __post_init__(self):
        if self.reasoning_weight < 0:
            raise ConfigError(f"loss.reasoning_weight: expected >= 0, got {self.reasoning_weight}")


@dataclass
class ThinkingConfig:
    """Which training frames teach slow thinking: those with a reasoning annotation whose logged future
    departs from holding the current twist by more than ``min_deviation_m`` (braking, a lane change, a
    turn: where the scene, not the ego's motion, decides the plan). ``prepare`` fits ``min_deviation_m``
    so that ``slow_fraction`` of the training frames reason (0 when fewer frames are annotated).

    Attributes:
        slow_fraction: target share of training frames with a reasoning target, in [0, 1].
        min_deviation_m: fitted threshold [m] (None until fitted: every annotated frame reasons).
    """

    slow_fraction: float = 0.25
    min_deviation_m: float | None = None

    def __post_init__(self):
        if not 0 <= self.slow_fraction <= 1:
            raise ConfigError(f"thinking.slow_fraction: expected in [0, 1], got {self.slow_fraction}")


@dataclass
class ModelConfig(FamilyConfig):
    """Everything needed to rebuild an AutoVLA model and its planner from a checkpoint.

    Attributes:
        rig: camera rig (:meth:`wamdiff_ros.rig.Rig.to_dict`).
        vocab: text words; ``text_tokens`` the tokenizer's exact id list once saved (authoritative).
        spec: trajectory grid; one action token per pose (``spec.dt`` is the primitive's duration).
        gate: budget gate; the model chooses slow by its first token (``theta`` on P([THINK])).
    """

    FAMILY: ClassVar[str] = FAMILY

    rig: dict
    vocab: list[str]
    text_tokens: list[str] = field(default_factory=list)
    family: str = FAMILY
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    thinking: ThinkingConfig = field(default_factory=ThinkingConfig)
    gate: GateConfig = field(default_factory=lambda: GateConfig(c_min=0.0, slow_cost_ms=40.0, min_slow_steps=(8,)))

    def __post_init__(self):
        from wamdiff_ros.rig import Rig

        self.rig_obj = Rig.from_dict(self.rig, "model config rig")
        self.vocab = [str(w) for w in self.vocab]
        if len(self.gate.min_slow_steps) != 1:
            raise ConfigError(
                f"gate.min_slow_steps: the autovla slow pass has one kind (reasoning), got {self.gate.min_slow_steps}"
            )

    @property
    def scene_len(self) -> int:
        """Scene tokens of every camera plus the ego token."""
        s = self.encoder.stride
        return sum((c.height // s) * (c.width // s) for c in self.rig_obj.cameras) + 1

    @property
    def prefix_len(self) -> int:
        return self.scene_len + self.layout.prompt_len

    @property
    def answer_len(self) -> int:
        """Longest answer: mode token, reasoning, [ACT], one action token per pose."""
        return 2 + self.layout.reasoning_len + self.spec.num_poses

    @property
    def max_len(self) -> int:
        return self.prefix_len + self.answer_len

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike = "models/autovla_small.yaml",
        vocab: list[str] | None = None,
        rig: dict | None = None,
    ) -> ModelConfig:
        """Load ``config/models/*.yaml`` (``rig:`` names a rig file; vocabulary from ``vocab`` or the world's)."""
        from wamdiff_ros.rig import load_rig

        data = dict(load_yaml(path))
        if rig is None:
            ref = data.get("rig", "rigs/default.yaml")
            rig = load_rig(ref).to_dict() if isinstance(ref, str) else ref
        data["rig"] = rig
        data["vocab"] = list(vocab) if vocab is not None else default_vocabulary()
        return cls.from_dict(data, str(path))


def tiny_config(vocab: list[str] | None = None, **overrides) -> ModelConfig:
    """A small config on a 2-camera 64×32 rig for unit tests (``overrides`` replace top-level sections)."""
    parts = {
        "rig": tiny_rig(),
        "vocab": vocab if vocab is not None else ["slow", "down", "lead", "car", "brakes"],
        "codebook": CodebookConfig(size=32, tolerance=0.2),
        "encoder": EncoderConfig(stem_channels=4, channels=(8,), history=2),
        "transformer": TransformerConfig(d_model=32, layers=2, heads=2, mlp_ratio=2.0),
        "layout": LayoutConfig(prompt_len=6, reasoning_len=5),
    }
    parts.update(overrides)
    return ModelConfig(**parts)


__all__ = ["FAMILY", "CodebookConfig", "LayoutConfig", "LossConfig", "ModelConfig", "ThinkingConfig", "tiny_config"]
