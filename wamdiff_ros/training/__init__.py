"""Training: the loop shared by every trainer (``loop``), the family-agnostic supervised trainer
(``wamdiff train``) over a family's :class:`~wamdiff_ros.training.task.SupervisedTask`, resumable
training state, RL fine-tuning (``rl``) and open-loop evaluation of checkpoints (``wamdiff eval``)."""
