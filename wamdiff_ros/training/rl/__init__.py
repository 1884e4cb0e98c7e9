"""Reinforcement-learning fine-tuning on replayed logs (pseudo-simulation): ``wamdiff rl`` and
``rl_finetune_node``.

The core is family-agnostic. A planner family's :class:`~wamdiff_ros.training.rl.policy.Policy` (from
``Planner.rl_policy``) samples a group of G answers per logged scene, as discrete tokens or continuous
samples, and re-evaluates their per-step log-probabilities under any weights;
:mod:`~wamdiff_ros.training.rl.rewards` scores the decoded trajectories with the NAVSIM scorer against
the logged future; :mod:`~wamdiff_ros.training.rl.objectives` turns group-normalised advantages and
log-probabilities into the GSPO or GRPO loss; :mod:`~wamdiff_ros.training.rl.trainer` runs the loop
with resumable checkpoints. Which weights RL trains is the family's choice (``trainable``).
"""
