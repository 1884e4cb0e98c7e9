"""Shared torch building blocks of the planner families: scene encoder, transformer blocks, MoE layers,
text tokenizer, checkpoint I/O and their configs. A family's own network lives in its folder under
:mod:`wamdiff_ros.planners`."""
