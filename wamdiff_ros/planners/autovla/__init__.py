"""AutoVLA family: a K-disk codebook of 0.5 s motion primitives as action tokens, a causal transformer
with a KV cache over scene, ego, prompt, optional reasoning and action tokens, and fast/slow thinking
chosen by the model's first token.

Parts: :mod:`.codebook` (K-disk clustering, tokenising), :mod:`.config`, :mod:`.net`, :mod:`.decoding`
(the token loop), :mod:`.planner`, :mod:`.graphs` (prefill and one-token decode ONNX graphs with the
cache as explicit I/O), :mod:`.policy` (GRPO with the reasoning-length penalty), :mod:`.task`
(supervised objective and codebook fitting).
"""

from wamdiff_ros.planners.autovla.planner import AutoVLAPlanner, fresh_planner, load

__all__ = ["AutoVLAPlanner", "fresh_planner", "load"]
