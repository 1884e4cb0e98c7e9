"""Training hyper-parameters (``config/training/*.yaml``): model, optimiser, schedule, budget, validation, and
the family's own settings."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from wamdiff_ros.config import ConfigError, load_yaml


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
    """Settings of a supervised run, shared by every family (see ``config/training/*.yaml``).

    Attributes:
        model: model config file (``config/models/*.yaml``) of the planner to build.
        family: the family's own settings, passed as keyword arguments to
            :meth:`~wamdiff_ros.planners.base.Planner.supervised_task`.
        max_minutes: total training budget [min] over all resumes of a run (None: no budget).
        max_steps: stop after this many optimiser steps in total (None: run all epochs).
        val_frames: open-loop PDMS frames per validation (evenly spaced over the validation set).
        val_loss_samples: validation samples for the loss (the same samples and masks every time).
        val_every_steps: also validate every this many steps (None: at epoch ends only).
        save_every_steps: refresh the resumable ``last/`` checkpoint this often (and at every epoch end).
    """

    model: str = ""

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
    family: dict = field(default_factory=dict)
    val_frames: int = 120
    val_loss_samples: int = 96
    val_every_steps: int | None = None
    save_every_steps: int = 100

    def __post_init__(self):
        if not isinstance(self.family, dict):
            raise ConfigError(f"training settings: family: expected a mapping of settings, got {self.family!r}")
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
            "val_every_steps": self.val_every_steps is None or self.val_every_steps >= 1,
            "save_every_steps": self.save_every_steps >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"training settings: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(epochs/save_every_steps/threads >= 1, batch_size >= 2, lr > 0, 0 <= min_lr_ratio <= 1, "
                "max_minutes/max_steps/val_every_steps positive or null, others >= 0)"
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


__all__ = ["SettingsFile", "TrainSettings", "learning_rate", "passive_omp"]
