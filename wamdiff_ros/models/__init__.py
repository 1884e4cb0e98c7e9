"""Torch networks of the planners: encoders, transformers, MoE, tokenizers, checkpoints."""
