"""Configuration of the shared building blocks (scene encoder, transformer, MoE) and the helpers that
build any family's nested config dataclasses from JSON/YAML mappings (unknown keys refused with their
path) and turn them back into plain mappings."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from wamdiff_ros.config import ConfigError
from wamdiff_ros.types import TrajectorySpec

ROUTINGS: tuple[str, ...] = ("expert_choice", "token_choice", "none")
"""MoE routing: WAM-Diff's expert choice, TrajMoE's token-choice top-k with a shared expert, or no MoE."""


@dataclass
class EncoderConfig:
    """Per-camera CNN: a 4×4/4 stem then 3×3/2 convolutions, so each camera gives (H/32)×(W/32) tokens.

    Attributes:
        stem_channels: channels after the stem.
        channels: channels of the intermediate stride-2 stages (the last stage outputs ``d_model``).
        history: number of past ego poses fed to the ego token (zero-padded, with a validity flag).
        past_frame_s: age [s] of an earlier set of the same cameras stacked with the current one at the
            stem (0: the current frame only). One frame cannot tell a stopped car ahead from one moving
            with the ego; two frames show it growing.
    """

    stem_channels: int = 32
    channels: tuple[int, ...] = (64, 128)
    history: int = 4
    past_frame_s: float = 0.0

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if self.stem_channels < 1 or any(c < 1 for c in self.channels):
            raise ConfigError(f"encoder: channels must be positive, got {self.stem_channels}, {self.channels}")
        if self.history < 0:
            raise ConfigError(f"encoder.history: expected >= 0, got {self.history}")
        self.past_frame_s = float(self.past_frame_s)
        if not 0.0 <= self.past_frame_s <= 5.0:
            raise ConfigError(f"encoder.past_frame_s: expected 0 (off) to 5 s, got {self.past_frame_s}")

    @property
    def stride(self) -> int:
        return 4 * 2 ** (len(self.channels) + 1)

    @property
    def frames(self) -> int:
        """Camera sets per input: the current one, plus the past one when ``past_frame_s`` > 0."""
        return 2 if self.past_frame_s > 0 else 1


@dataclass
class TransformerConfig:
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ConfigError(f"transformer: d_model {self.d_model} must be divisible by heads {self.heads}")
        if self.layers < 1 or self.mlp_ratio <= 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"transformer: invalid layers/mlp_ratio/dropout: {self}")


@dataclass
class MoEConfig:
    """LoRA-MoE in parallel to the dense MLP of every block.

    Attributes:
        routing: one of :data:`ROUTINGS`.
        num_experts: private LoRA experts.
        rank: LoRA rank; expert ``i`` maps ``h -> (alpha / rank) · B_i A_i h``.
        alpha: LoRA scaling numerator.
        capacity_factor: expert choice: each expert takes ``ceil(capacity_factor · N / E)`` tokens of a
            group of N tokens.
        top_k: token choice: experts per token (weights renormalised over the top k).
        shared_expert: token choice: add an always-on LoRA expert (TrajMoE's e_0).
        balance_weight: weight of the CV²(importance) + CV²(load) loss (token choice).
    """

    routing: str = "expert_choice"
    num_experts: int = 8
    rank: int = 8
    alpha: float = 16.0
    capacity_factor: float = 1.0
    top_k: int = 2
    shared_expert: bool = True
    balance_weight: float = 0.01

    def __post_init__(self):
        if self.routing not in ROUTINGS:
            raise ConfigError(f"moe.routing: expected one of {ROUTINGS}, got {self.routing!r}")
        if self.num_experts < 1 or self.rank < 1:
            raise ConfigError(f"moe: num_experts and rank must be >= 1, got {self.num_experts}, {self.rank}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigError(f"moe.top_k: expected 1..{self.num_experts}, got {self.top_k}")
        if self.capacity_factor <= 0:
            raise ConfigError(f"moe.capacity_factor: expected > 0, got {self.capacity_factor}")


def default_vocabulary() -> list[str]:
    """The world's words (``wamdiff_ros.sim.language.vocabulary()``) if available, else []."""
    try:
        from wamdiff_ros.sim.language import vocabulary
    except ImportError:
        return []
    return list(vocabulary())


def plain(v):
    if dataclasses.is_dataclass(v):
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple | list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return v


def build(cls, d: dict, source: str):
    """Construct dataclass ``cls`` from ``d`` recursively, rejecting unknown keys with their path."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in {cls.__name__} (known: {sorted(names)})")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if hint is TrajectorySpec:
            kwargs[name] = value if isinstance(value, TrajectorySpec) else TrajectorySpec.from_dict(value)
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value, f"{source}.{name}")
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{source}: {cls.__name__}: {e}") from e


def tiny_rig() -> dict:
    """A 2-camera 64×32 rig (``Rig.to_dict`` form) for the families' tiny unit-test configs."""
    cams = [
        {"name": n, "width": 64, "height": 32, "fov_deg": 90.0, "position": [1.5, y, 1.6], "rpy": [0.0, 0.0, yaw]}
        for n, y, yaw in (("front", 0.0, 0.0), ("front_left", 0.4, 1.0))
    ]
    return {"name": "tiny_2cam", "cameras": cams}


class FamilyConfig:
    """Mixin of a family's model-config dataclass: ``to_dict`` / ``from_dict`` with the family checked.
    Subclasses set ``FAMILY``."""

    FAMILY: typing.ClassVar[str] = ""

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, TrajectorySpec) else plain(v)
        return out

    @classmethod
    def from_dict(cls, d: dict, source: str = "model config"):
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(d).__name__}")
        if d.get("family", cls.FAMILY) != cls.FAMILY:
            raise ConfigError(f"{source}: family {d.get('family')!r} is not {cls.FAMILY!r}")
        return build(cls, d, source)


__all__ = [
    "ROUTINGS",
    "EncoderConfig",
    "FamilyConfig",
    "MoEConfig",
    "TransformerConfig",
    "build",
    "default_vocabulary",
    "plain",
    "tiny_rig",
]
