"""Assemble an RL fine-tuning run from paths (model, bags, settings): the one place ``wamdiff rl`` and
``rl_finetune_node`` build their :class:`~wamdiff_ros.training.rl.trainer.RLTrainer`."""

from __future__ import annotations

from pathlib import Path


def build_trainer(
    model: str | Path,
    data: list[str],
    out: str | Path,
    settings,
    val: list[str] | None = None,
    *,
    resume: bool = False,
    cache: bool = True,
    **trainer_options,
):
    """An :class:`RLTrainer` fine-tuning checkpoint ``model`` (the KL reference is a second copy of
    it) on ``data`` bags, validating on ``val``. With ``resume`` the weights come from ``out/last/``
    (loaded by :meth:`RLTrainer.run`). ValueError for a family without an RL policy. Raises
    CheckpointError / ValueError / FileNotFoundError with a message naming the bad input."""
    import torch

    from wamdiff_ros.evaluation.runs import planner_dataset
    from wamdiff_ros.models.checkpoint import CheckpointError
    from wamdiff_ros.planners.base import load_planner
    from wamdiff_ros.training.rl.trainer import LAST, RLTrainer
    from wamdiff_ros.training.supervised import data_summary

    torch.set_num_threads(settings.threads)
    model = Path(model)
    if resume and not (Path(out) / LAST).exists() and not any(Path(out).glob(f".{LAST}.old-*")):
        raise CheckpointError(f"--resume: {Path(out) / LAST} does not exist (nothing to resume)")
    planner = load_planner(model)
    policy = planner.rl_policy(**settings.policy_options())
    if policy is None:
        raise ValueError(f"--model {model}: the {planner.family!r} family has no RL policy (nothing RL can train)")
    ref = load_planner(model).network()

    def dataset(bags):
        return planner_dataset(bags, planner, cache=cache, scenes=False)

    train_set = dataset(data)
    val_set = dataset(val) if val else None
    info = {"train": data_summary(train_set)}
    if val_set is not None:
        info["val"] = data_summary(val_set)
    return RLTrainer(
        policy, ref, train_set, out, settings, val_set, start_model=str(model), data_info=info, **trainer_options
    )


__all__ = ["build_trainer"]
