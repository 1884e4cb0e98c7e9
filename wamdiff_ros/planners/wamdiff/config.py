"""Model configuration of the WAM-Diff family: plain dataclasses, validated, round-tripped through JSON.

The checkpoint's ``config.json`` holds :meth:`ModelConfig.to_dict`; a YAML file under
``config/models/`` holds the same tree minus the vocabulary and with the rig given as a rig file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.models.config import (
    ROUTINGS,
    EncoderConfig,
    FamilyConfig,
    MoEConfig,
    TransformerConfig,
    default_vocabulary,
    tiny_rig,
)
from wamdiff_ros.planners.gate import GateConfig
from wamdiff_ros.types import COMMANDS, TrajectorySpec

ORDERS: tuple[str, ...] = ("low_confidence", "random", "causal", "reverse_causal")
"""Remasking orders: which masked tokens a decoding step reveals first."""

TRAJECTORY_PRIORS: tuple[str, ...] = ("none", "constant_velocity")
"""What trajectory tokens encode: the waypoints, or their offset from the constant-twist path."""


@dataclass
class AxisBinsConfig:
    """Bins of one trajectory coordinate.

    Attributes:
        lo, hi: covered range [m]; values outside are clamped to the edge bins.
        bins: number of bins (tokens) for this axis.
        scale: 0 for uniform bins; > 0 for asinh companding ``u = asinh(v / scale)`` with uniform bins
            in ``u``: bins are ``scale``-times finer near 0 than far out (width ≈ Δu·sqrt(scale² + v²)).
    """

    lo: float
    hi: float
    bins: int
    scale: float = 0.0

    def __post_init__(self):
        if not self.hi > self.lo:
            raise ConfigError(f"trajectory bins: expected hi > lo, got lo={self.lo}, hi={self.hi}")
        if self.bins < 2:
            raise ConfigError(f"trajectory bins: expected >= 2 bins, got {self.bins}")
        if self.scale < 0:
            raise ConfigError(f"trajectory bins: expected scale >= 0 (0 = uniform), got {self.scale}")


@dataclass
class TrajectoryTokensConfig:
    """Discretisation of waypoints: x uniform 0.2 m; y asinh-companded (fine near the lane centre).

    Attributes:
        x, y: bins of each axis.
        prior: what the tokens encode. ``none``: the waypoints themselves. ``constant_velocity``: the
            waypoints minus the path the ego would drive holding its current twist (the arc of
            :func:`wamdiff_ros.planning.motion.constant_twist_path`), so the network predicts a
            correction to that extrapolation (acceleration, a turn's change of curvature).
    """

    x: AxisBinsConfig = field(default_factory=lambda: AxisBinsConfig(lo=-5.0, hi=130.0, bins=675))
    y: AxisBinsConfig = field(default_factory=lambda: AxisBinsConfig(lo=-30.0, hi=30.0, bins=200, scale=2.0))
    prior: str = "none"

    def __post_init__(self):
        if self.prior not in TRAJECTORY_PRIORS:
            raise ConfigError(f"trajectory.prior: expected one of {TRAJECTORY_PRIORS}, got {self.prior!r}")


@dataclass
class LayoutConfig:
    """Token blocks after the scene tokens: prompt (command + instruction or question), text answer
    (reasoning or VQA answer), trajectory (2 tokens per waypoint)."""

    prompt_len: int = 16
    text_len: int = 72

    def __post_init__(self):
        if self.prompt_len < 4 or self.text_len < 2:
            raise ConfigError(f"layout: expected prompt_len >= 4 and text_len >= 2, got {self}")


@dataclass
class DecodingConfig:
    """Masked-diffusion decoding.

    Attributes:
        fast_steps, slow_steps: decoding steps for the trajectory block in fast / slow mode.
        reasoning_steps: steps for the reasoning text block (slow mode).
        order: default remasking order of the trajectory block (one of :data:`ORDERS`).
        reasoning_order: remasking order of the text block.
        order_map: scenario name or command -> order (scenario-aware decoding); a scenario key wins
            over a command key.
        threshold: confidence threshold τ for parallel unmasking (every masked token with confidence ≥ τ
            is revealed, at least the scheduled count per step); None = fixed schedule.
        temperature: 0 = greedy; > 0 samples with Gumbel noise on logits / temperature.
        smooth_degree: 0 = waypoints as decoded; k > 0 = least-squares polynomial of degree k in time
            through the ego origin fitted to the decoded waypoints (tokens are predicted independently,
            so the raw path jitters by up to a bin and fails NAVSIM's comfort bounds).
    """

    fast_steps: int = 4
    slow_steps: int = 8
    reasoning_steps: int = 8
    order: str = "low_confidence"
    reasoning_order: str = "low_confidence"
    order_map: dict[str, str] = field(default_factory=dict)
    threshold: float | None = None
    temperature: float = 0.0
    smooth_degree: int = 0

    def __post_init__(self):
        for name in ("fast_steps", "slow_steps", "reasoning_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"decoding.{name}: expected >= 1, got {getattr(self, name)}")
        for key, order in {"order": self.order, "reasoning_order": self.reasoning_order, **self.order_map}.items():
            if order not in ORDERS:
                raise ConfigError(f"decoding order for {key!r}: expected one of {ORDERS}, got {order!r}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ConfigError(f"decoding.threshold: expected in (0, 1] or null, got {self.threshold}")
        if self.temperature < 0:
            raise ConfigError(f"decoding.temperature: expected >= 0, got {self.temperature}")
        if not 0 <= self.smooth_degree <= 6:
            raise ConfigError(f"decoding.smooth_degree: expected 0 (off) to 6, got {self.smooth_degree}")

    def order_for(self, command: str | None = None, scenario: str | None = None) -> str:
        """The trajectory order for a frame: ``order_map[scenario]``, else ``order_map[command]``, else ``order``."""
        for key in (scenario, command):
            if key is not None and key in self.order_map:
                return self.order_map[key]
        return self.order


@dataclass
class ModelConfig(FamilyConfig):
    """Everything needed to rebuild a WAM-Diff model and its planner from a checkpoint.

    Attributes:
        rig: the camera rig the model was trained with (:meth:`wamdiff_ros.rig.Rig.to_dict`).
        vocab: the text words (the tokenizer adds specials, digits and commands).
        text_tokens: the tokenizer's exact id -> token list, filled when a checkpoint is saved; when
            present it is authoritative (ids stay fixed whatever the code's base words become).
        spec: trajectory time grid (8 × 0.5 s by default).
    """

    FAMILY: ClassVar[str] = "wamdiff"

    rig: dict
    vocab: list[str]
    text_tokens: list[str] = field(default_factory=list)
    family: str = "wamdiff"
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    trajectory: TrajectoryTokensConfig = field(default_factory=TrajectoryTokensConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self):
        from wamdiff_ros.rig import Rig

        self.rig_obj = Rig.from_dict(self.rig, "model config rig")
        stride = self.encoder.stride
        for cam in self.rig_obj.cameras:
            if cam.width % stride or cam.height % stride:
                raise ConfigError(
                    f"model config: camera {cam.name!r} is {cam.width}×{cam.height} px; the encoder needs "
                    f"multiples of its stride {stride}"
                )
        self.vocab = [str(w) for w in self.vocab]
        for cmd in self.decoding.order_map:
            if not isinstance(cmd, str):
                raise ConfigError(f"decoding.order_map: keys must be strings, got {cmd!r}")

    @property
    def scene_tokens_per_camera(self) -> int:
        s = self.encoder.stride
        cam = self.rig_obj.cameras[0]
        return (cam.height // s) * (cam.width // s)

    @property
    def scene_len(self) -> int:
        """Scene tokens (all cameras) plus the ego token."""
        s = self.encoder.stride
        return sum((c.height // s) * (c.width // s) for c in self.rig_obj.cameras) + 1

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike = "models/wamdiff_small.yaml",
        vocab: list[str] | None = None,
        rig: dict | None = None,
    ) -> ModelConfig:
        """Load ``config/models/*.yaml``; ``rig:`` names a rig file; the vocabulary comes from ``vocab``,
        else :func:`wamdiff_ros.sim.language.vocabulary` when that module exists, else the built-in
        base words only."""
        from wamdiff_ros.rig import load_rig

        data = dict(load_yaml(path))
        if rig is None:
            rig_ref = data.get("rig", "rigs/default.yaml")
            rig = load_rig(rig_ref).to_dict() if isinstance(rig_ref, str) else rig_ref
        data["rig"] = rig
        data["vocab"] = list(vocab) if vocab is not None else default_vocabulary()
        return cls.from_dict(data, str(path))


def tiny_config(routing: str = "expert_choice", vocab: list[str] | None = None, **overrides) -> ModelConfig:
    """A ~0.1 M-parameter config on a 2-camera 64×32 rig, for unit tests and smoke runs
    (trains on one batch in seconds). ``overrides`` replace top-level sections."""
    parts = {
        "rig": tiny_rig(),
        "vocab": vocab if vocab is not None else ["slow", "down", "lead", "car", "brakes", "how", "many", "lanes"],
        "trajectory": TrajectoryTokensConfig(AxisBinsConfig(-5.0, 45.0, 50), AxisBinsConfig(-10.0, 10.0, 20, 2.0)),
        "encoder": EncoderConfig(stem_channels=4, channels=(8,), history=2),
        "transformer": TransformerConfig(d_model=64, layers=2, heads=2, mlp_ratio=2.0),
        "moe": MoEConfig(routing=routing, num_experts=4, rank=2, alpha=4.0),
        "layout": LayoutConfig(prompt_len=8, text_len=6),
        "decoding": DecodingConfig(fast_steps=4, slow_steps=4, reasoning_steps=3),
    }
    parts.update(overrides)
    return ModelConfig(**parts)


__all__ = [
    "COMMANDS",
    "ORDERS",
    "ROUTINGS",
    "TRAJECTORY_PRIORS",
    "AxisBinsConfig",
    "DecodingConfig",
    "EncoderConfig",
    "GateConfig",
    "LayoutConfig",
    "MoEConfig",
    "ModelConfig",
    "TrajectoryTokensConfig",
    "TransformerConfig",
    "default_vocabulary",
    "tiny_config",
]
