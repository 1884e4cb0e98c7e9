"""Reinforcement-learning fine-tuning on replayed logs (pseudo-simulation): ``wamdiff rl`` and
``rl_finetune_node``.

The core is family-agnostic. A :class:`~wamdiff_ros.training.rl.policy.Policy` samples a group of G
answers per logged scene and re-evaluates their per-token log-probabilities under any weights;
:mod:`~wamdiff_ros.training.rl.rewards` scores the decoded trajectories with the NAVSIM scorer against
the logged future; :mod:`~wamdiff_ros.training.rl.objectives` turns group-normalised advantages and
log-probabilities into the GSPO or GRPO loss; :mod:`~wamdiff_ros.training.rl.trainer` runs the loop
with resumable checkpoints. WAM-Diff's masked diffusion is the first policy; DiffusionDriveV2's anchor
GRPO, AutoVLA's length-penalised GRPO and TrajMoE's Gaussian score heads plug in as further policies
and reward terms.
"""
