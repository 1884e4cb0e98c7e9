"""Training: multi-task batching, the supervised trainer (``wamdiff train``), resumable training state,
and open-loop evaluation of checkpoints (``wamdiff eval``)."""
