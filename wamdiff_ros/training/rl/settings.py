"""RL fine-tuning settings (``config/training/rl_*.yaml``); command-line options and node parameters
override them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from wamdiff_ros.config import ConfigError
from wamdiff_ros.training.rl.objectives import OBJECTIVES
from wamdiff_ros.training.rl.rewards import RewardConfig
from wamdiff_ros.training.settings import SettingsFile


@dataclass
class RLSettings(SettingsFile):
    """See a family's ``config/training/rl_<family>_small.yaml`` for what each field does.

    Attributes:
        algorithm: ``gspo`` (sequence-level ratio) or ``grpo`` (token-level ratio).
        group_size: G, answers sampled per logged scene.
        scenes_per_step: groups per optimiser step.
        inner_epochs: optimiser steps on each batch of rollouts (the first is on-policy, later ones
            use the importance ratio against the sampling weights).
        temperature / order / steps: the sampling policy, passed to the family's
            :meth:`~wamdiff_ros.planners.base.Planner.rl_policy` (order and steps None: the family's
            defaults; the family checks them).
        kl_beta: weight of the k3 KL to the frozen starting model.
        adv_std_floor: lower bound of the group reward std in the advantage normalisation (see
            :func:`~wamdiff_ros.training.rl.objectives.group_advantages`).
        advantage_floor: clamp advantages at >= this (None: off; DiffusionDriveV2: 0).
        beat_logged: zero the advantage of answers whose reward is below the logged trajectory's.
        fail_advantage: advantage of answers with NC != 1 or DAC != 1 (None: off; DiffusionDriveV2: −1).
        imitation_weight: weight of the policy's ``imitation_loss`` to the logged future in a group
            with a positive advantage (0: off; the policy must have ``imitation_loss``).
        imitation_weight_idle: the same in a group without a positive advantage.
        trainable: what RL trains, by a name the family's policy knows (``all``: every weight; see the
            family's ``trainable_parameters`` for the others).
        every: use every N-th training sample as a scene (neighbouring ticks are nearly identical).
        max_minutes: budget [min] over all resumes (None: until ``epochs`` or ``max_steps``).
        val_every_steps: validate (open-loop PDMS of the fast path) this often; also at the start and end.
        fanout_min_rollouts: score a step's rewards on the Ray workers (``wamdiff rl --workers N`` or
            ``--address``) when the process has at least this many rollouts of the step
            (``scenes_per_step · group_size``, divided by the ranks under torchrun); fewer are scored in
            this process, where the tasks' round trips would cost more than they save.
    """

    algorithm: str = "gspo"
    group_size: int = 8
    scenes_per_step: int = 8
    inner_epochs: int = 2
    temperature: float = 1.0
    order: str | None = None
    steps: int | None = None
    clip_low: float = 3e-4
    clip_high: float = 4e-4
    grpo_clip: float = 0.2
    kl_beta: float = 0.01
    adv_std_floor: float = 0.0
    advantage_floor: float | None = None
    beat_logged: bool = False
    fail_advantage: float | None = None
    imitation_weight: float = 0.0
    imitation_weight_idle: float = 0.0
    lr: float = 2e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    trainable: str = "transformer"
    reward: RewardConfig = field(default_factory=RewardConfig)
    every: int = 2
    epochs: int = 1
    max_minutes: float | None = None
    max_steps: int | None = None
    seed: int = 0
    threads: int = 2
    val_every_steps: int = 25
    val_frames: int = 120
    save_every_steps: int = 5
    fanout_min_rollouts: int = 32

    def __post_init__(self):
        if isinstance(self.reward, dict):
            try:
                self.reward = RewardConfig(**self.reward)
            except TypeError as e:
                keys = [f.name for f in dataclasses.fields(RewardConfig)]
                raise ConfigError(f"rl reward: expected keys {keys}: {e}") from e
        checks = {
            "algorithm": self.algorithm in OBJECTIVES,
            "group_size": self.group_size >= 2,
            "scenes_per_step": self.scenes_per_step >= 1,
            "inner_epochs": self.inner_epochs >= 1,
            "temperature": self.temperature > 0,
            "order": self.order is None or isinstance(self.order, str),
            "steps": self.steps is None or self.steps >= 1,
            "clip_low": 0 <= self.clip_low < 1,
            "clip_high": self.clip_high >= 0,
            "grpo_clip": 0 <= self.grpo_clip < 1,
            "kl_beta": self.kl_beta >= 0,
            "adv_std_floor": self.adv_std_floor >= 0,
            "imitation_weight": self.imitation_weight >= 0 and self.imitation_weight_idle >= 0,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip >= 0,
            "trainable": isinstance(self.trainable, str) and bool(self.trainable),
            "every": self.every >= 1,
            "epochs": self.epochs >= 1,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "threads": self.threads >= 1,
            "val_every_steps": self.val_every_steps >= 1,
            "val_frames": self.val_frames >= 0,
            "save_every_steps": self.save_every_steps >= 1,
            "fanout_min_rollouts": self.fanout_min_rollouts >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"rl settings: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} (algorithm in "
                f"{OBJECTIVES}, order a name or null, trainable a name, group_size >= 2, "
                "temperature/lr > 0, clip ranges in [0, 1), counts >= 1, others >= 0)"
            )

    def policy_options(self) -> dict:
        """The sampling settings for :meth:`~wamdiff_ros.planners.base.Planner.rl_policy` (unset ones left
        to the family), with the run's seed."""
        opts = {"temperature": self.temperature, "order": self.order, "steps": self.steps, "seed": self.seed}
        return {k: v for k, v in opts.items() if v is not None}


def default_settings_file(family: str) -> str:
    """The RL settings a family ships (``config/training/rl_<family>_small.yaml``)."""
    return f"training/rl_{family}_small.yaml"


__all__ = ["RLSettings", "default_settings_file"]
