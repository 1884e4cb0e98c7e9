"""Model configuration of the DiffusionDrive family: plain dataclasses, validated, round-tripped
through JSON. The checkpoint's ``config.json`` holds :meth:`ModelConfig.to_dict` with the anchors
fitted on the training split; a YAML file under ``config/models/`` holds the same tree with the rig
given as a rig file and no anchors (an untrained model gets straight-line anchors at assorted speeds)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.models.config import EncoderConfig, FamilyConfig, tiny_rig
from wamdiff_ros.types import TrajectorySpec


@dataclass
class DecoderConfig:
    """Trajectory decoder: ``layers`` of (self-attention over the anchors, cross-attention to the scene
    tokens, MLP), width ``d_model`` (also the scene encoder's token width)."""

    d_model: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0

    def __post_init__(self):
        if self.d_model % self.heads or self.layers < 1 or self.mlp_ratio <= 0:
            raise ConfigError(f"decoder: need d_model divisible by heads, layers >= 1, mlp_ratio > 0: {self}")


@dataclass
class DiffusionConfig:
    """Truncated diffusion (DiffusionDrive).

    Attributes:
        train_steps, beta_start, beta_end: the DDIM scheduler (scaled-linear betas).
        train_t_max: training noises anchors at t uniform in [0, train_t_max).
        noise_t: inference noises the anchors to this t.
        steps: denoising steps of the fast path (timesteps evenly from ``noise_t`` down).
        slow_steps: denoising steps of the slow path.
    """

    train_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    train_t_max: int = 50
    noise_t: int = 8
    steps: int = 2
    slow_steps: int = 2

    def __post_init__(self):
        if not 0 < self.noise_t < self.train_t_max <= self.train_steps:
            raise ConfigError(f"diffusion: expected 0 < noise_t < train_t_max <= train_steps, got {self}")
        if not (1 <= self.steps <= self.noise_t and 1 <= self.slow_steps <= self.noise_t):
            raise ConfigError(f"diffusion: steps and slow_steps must be in 1..noise_t ({self.noise_t}), got {self}")


@dataclass
class SelectorConfig:
    """The DiffusionDriveV2 selector of the slow path: ``copies`` stochastic samples (DDIM eta
    ``eta``) of every anchor, a coarse score head keeps ``keep`` of them, a fine scorer picks one.

    Attributes:
        copies: stochastic samples per anchor (candidates = copies × anchors, plus the K deterministic ones).
        keep: candidates the coarse head keeps for the fine scorer.
        eta: DDIM eta of the sampled candidates.
        trained: whether the coarse and fine heads were trained (set by a supervised run with
            ``selector_weight`` > 0); ``adaptive`` never picks the slow path while they are not.
    """

    copies: int = 4
    keep: int = 32
    eta: float = 1.0
    trained: bool = False

    def __post_init__(self):
        if self.copies < 0 or self.keep < 1 or self.eta < 0:
            raise ConfigError(f"selector: expected copies >= 0, keep >= 1, eta >= 0, got {self}")


@dataclass
class ModelConfig(FamilyConfig):
    """Everything needed to rebuild a DiffusionDrive model and its planner from a checkpoint.

    Attributes:
        rig: the camera rig the model was trained with (:meth:`wamdiff_ros.rig.Rig.to_dict`).
        num_anchors: K, anchors = trajectory modes.
        anchors: (K, T, 2) anchor waypoints [m] (k-means over the training split's futures; empty
            before :meth:`~wamdiff_ros.planners.diffusiondrive.task.DiffusionDriveTask.prepare`).
        mode: default reasoning mode (``fast``: anchor classifier; ``slow``: selector; ``adaptive``:
            the selector when the budget allows it).
        smooth_degree: 0 = the denoised waypoints as they are; k > 0 = their least-squares polynomial of
            degree k in time through the ego origin (the residual noise of two denoising steps makes the
            raw path jitter and fail NAVSIM's comfort bounds).
    """

    FAMILY: ClassVar[str] = "diffusiondrive"

    rig: dict
    family: str = "diffusiondrive"
    spec: TrajectorySpec = field(default_factory=TrajectorySpec)
    num_anchors: int = 20
    anchors: list = field(default_factory=list)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    selector: SelectorConfig = field(default_factory=SelectorConfig)
    mode: str = "fast"
    smooth_degree: int = 0

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
        if self.num_anchors < 2:
            raise ConfigError(f"num_anchors: expected >= 2, got {self.num_anchors}")
        if self.mode not in ("adaptive", "fast", "slow"):
            raise ConfigError(f"mode: expected adaptive, fast or slow, got {self.mode!r}")
        if not 0 <= self.smooth_degree <= 6:
            raise ConfigError(f"smooth_degree: expected 0 (off) to 6, got {self.smooth_degree}")
        if not self.anchors:
            self.anchors = default_anchors(self.num_anchors, self.spec).tolist()
        a = np.asarray(self.anchors, np.float64)
        if a.shape != (self.num_anchors, self.spec.num_poses, 2) or not np.isfinite(a).all():
            raise ConfigError(
                f"anchors: expected finite ({self.num_anchors}, {self.spec.num_poses}, 2) waypoints, got {a.shape}"
            )
        self.anchors = a.tolist()

    @property
    def anchor_array(self) -> np.ndarray:
        return np.asarray(self.anchors, np.float64)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike = "models/diffusiondrive_small.yaml") -> ModelConfig:
        """Load ``config/models/*.yaml``; ``rig:`` names a rig file."""
        from wamdiff_ros.rig import load_rig

        data = dict(load_yaml(path))
        rig_ref = data.get("rig", "rigs/default.yaml")
        data["rig"] = load_rig(rig_ref).to_dict() if isinstance(rig_ref, str) else rig_ref
        return cls.from_dict(data, str(path))


def default_anchors(k: int, spec: TrajectorySpec) -> np.ndarray:
    """(k, T, 2) placeholder anchors of an untrained model: constant speeds 0…30 m/s, alternately
    straight and on gentle left/right arcs."""
    t = spec.times
    out = np.zeros((k, len(t), 2))
    for i in range(k):
        v = 30.0 * i / max(k - 1, 1)
        kappa = (0.0, 0.01, -0.01)[i % 3]
        s = v * t
        out[i] = np.stack([s, 0.5 * kappa * s**2], axis=1)
    return out


def tiny_config(**overrides) -> ModelConfig:
    """A small config on a 2-camera 64×32 rig with 6 anchors, for unit tests and smoke runs."""
    parts = {
        "rig": tiny_rig(),
        "num_anchors": 6,
        "encoder": EncoderConfig(stem_channels=4, channels=(8,), history=2),
        "decoder": DecoderConfig(d_model=32, layers=1, heads=2),
        "selector": SelectorConfig(copies=2, keep=4),
    }
    parts.update(overrides)
    return ModelConfig(**parts)


__all__ = ["DecoderConfig", "DiffusionConfig", "ModelConfig", "SelectorConfig", "default_anchors", "tiny_config"]
