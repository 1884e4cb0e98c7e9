"""Training hyper-parameters (``config/training/*.yaml``): optimiser, schedule, budget, task mix, validation."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from wamdiff_ros.config import ConfigError, load_yaml
from wamdiff_ros.planners.wamdiff.layout import TASKS


@dataclass(frozen=True)
class TaskMix:
    """Relative sampling weights of the tasks (normalised); a tick without reasoning text or VQA pairs
    falls back to ``motion`` for those draws."""

    motion: float = 0.45
    reasoning: float = 0.40
    vqa: float = 0.15

    def __post_init__(self):
        w = self.weights()
        if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
            raise ConfigError(f"training mix: expected non-negative weights with a positive sum, got {self}")

    def weights(self) -> list[float]:
        return [float(getattr(self, t)) for t in TASKS]

    def probabilities(self) -> list[float]:
        """Probabilities in :data:`wamdiff_ros.planners.wamdiff.layout.TASKS` order."""
        w = self.weights()
        return [v / sum(w) for v in w]


class SettingsFile:
    """Shared behaviour of the settings dataclasses read from ``config/training/*.yaml``: unknown keys
    are rejected by name, command-line overrides replace only what was given. Subclasses set
    ``DEFAULT_FILE``."""

    DEFAULT_FILE = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with the non-None ``changes`` applied (command-line overrides)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, d: dict, source: str = "settings"):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown} (known: {sorted(names)})")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None = None):
        path = path or cls.DEFAULT_FILE
        return cls.from_dict(load_yaml(path), str(path))


@dataclass
class TrainSettings(SettingsFile):
    """See ``config/training/wamdiff_small.yaml`` for what each field does.

    Attributes:
        max_minutes: total training budget [min] over all resumes of a run (None: no budget).
        max_steps: stop after this many optimiser steps in total (None: run all epochs).
        val_frames: open-loop PDMS frames per validation (evenly spaced over the validation set).
        val_loss_samples: validation samples for the loss (the same samples and masks every time).
        save_every_steps: refresh the resumable ``last/`` checkpoint this often (and at every epoch end).
    """

    DEFAULT_FILE = "training/wamdiff_small.yaml"

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_minutes: float | None = None
    max_steps: int | None = None
    seed: int = 0
    threads: int = 2
    mix: TaskMix = field(default_factory=TaskMix)
    val_frames: int = 120
    val_loss_samples: int = 96
    save_every_steps: int = 100

    def __post_init__(self):
        if isinstance(self.mix, dict):
            try:
                self.mix = TaskMix(**self.mix)
            except TypeError as e:
                raise ConfigError(f"training mix: expected keys {list(TASKS)}: {e}") from e
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip >= 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "threads": self.threads >= 1,
            "val_frames": self.val_frames >= 0,
            "val_loss_samples": self.val_loss_samples >= 0,
            "save_every_steps": self.save_every_steps >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"training settings: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(epochs/save_every_steps/threads >= 1, batch_size >= 2, lr > 0, 0 <= min_lr_ratio <= 1, "
                "max_minutes/max_steps positive or null, others >= 0)"
            )


def passive_omp() -> None:
    """Make idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``) unless the user
    chose otherwise. On a 2-core machine shared with other processes, spinning torch threads wait on
    each other's descheduled peers: a 2-thread training step or plan measured 5-50x slower than with
    passive waiting. Only effective before torch is first imported (the CLI imports it lazily)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def learning_rate(settings: TrainSettings, step: int, progress: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``lr · min_lr_ratio`` as
    ``progress`` (fraction of the run done, by steps or by time budget) goes 0 → 1."""
    if settings.warmup_steps and step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    floor = settings.lr * settings.min_lr_ratio
    return floor + (settings.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


__all__ = ["SettingsFile", "TaskMix", "TrainSettings", "learning_rate", "passive_omp"]
