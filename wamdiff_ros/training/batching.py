"""Collate driving samples into multi-task :class:`~wamdiff_ros.planners.wamdiff.masked_diffusion.TrainBatch` es.

Each sample draws a task from the :class:`~wamdiff_ros.training.settings.TaskMix`:

- ``motion``: plan prompt (command + instruction) → trajectory (the fast path);
- ``reasoning``: plan prompt → reasoning text, then the trajectory conditioned on it (the slow path);
  ticks without reasoning text (plain cruising) fall back to ``motion``;
- ``vqa``: one of the tick's question–answer pairs (question in the prompt, answer as text); falls
  back to ``motion`` when the tick has none.

The complexity label is "the tick has reasoning text" whatever task was drawn, so the gate's head
sees every sample. Draws come from the ``rng`` passed in, so a batch is reproducible from its seed.

In training every sample of a step has its own draws (task, VQA pair, masking), fixed by
``(seed, step, position in the global batch)`` (:func:`sample_rngs`, :func:`mask_draws`), so a rank
holding a shard of the batch draws exactly what a single process holding all of it would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wamdiff_ros.models.encoder import ego_features
from wamdiff_ros.planners.wamdiff.layout import TASKS, Sample, SequenceLayout, TokenSpace, make_sample
from wamdiff_ros.planners.wamdiff.masked_diffusion import TrainBatch
from wamdiff_ros.training.settings import TaskMix


def choose_task(sample, mix: TaskMix, rng: np.random.Generator) -> str:
    """Draw a task for a :class:`wamdiff_ros.data.dataset.Sample` (with the fallbacks above)."""
    task = TASKS[int(rng.choice(len(TASKS), p=mix.probabilities()))]
    language = sample.language or {}
    if task == "reasoning" and not language.get("reasoning"):
        return "motion"
    if task == "vqa" and not language.get("vqa"):
        return "motion"
    return task


def encode_sample(space: TokenSpace, layout: SequenceLayout, sample, task: str, rng: np.random.Generator) -> Sample:
    """Target tokens of one driving sample for ``task`` (the VQA pair is drawn with ``rng``)."""
    language = sample.language or {}
    reasoning = language.get("reasoning", "")
    complex_scene = bool(reasoning)
    if task == "motion":
        return make_sample(
            space, layout, "motion", sample.command, sample.instruction, waypoints=sample.future,
            complex_scene=complex_scene, ego=sample.ego,
        )  # fmt: skip
    if task == "reasoning":
        if not reasoning:
            raise ValueError("encode_sample: task 'reasoning' needs sample.language['reasoning'] text")
        return make_sample(
            space, layout, "reasoning", sample.command, sample.instruction, reasoning, waypoints=sample.future,
            complex_scene=complex_scene, ego=sample.ego,
        )  # fmt: skip
    if task == "vqa":
        pairs = language.get("vqa") or []
        if not pairs:
            raise ValueError("encode_sample: task 'vqa' needs sample.language['vqa'] question-answer pairs")
        question, answer = pairs[int(rng.integers(len(pairs)))]
        return make_sample(space, layout, "vqa", sample.command, question, answer, complex_scene=complex_scene)
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


class Collator:
    """Turns a list of driving samples into a :class:`TrainBatch` for one network.

    Args:
        space, layout: the network's token space and sequence layout.
        cameras: camera names in the rig's order (the image axis of the batch).
        history: past ego poses in the ego features (the encoder's ``history``).
        mix: task sampling weights.
    """

    def __init__(self, space: TokenSpace, layout: SequenceLayout, cameras: Sequence[str], history: int, mix: TaskMix):
        self.space = space
        self.layout = layout
        self.cameras = list(cameras)
        self.history = int(history)
        self.mix = mix

    @classmethod
    def for_net(cls, net, mix: TaskMix | None = None) -> Collator:
        """A collator for a :class:`wamdiff_ros.planners.wamdiff.net.WamDiffNet`."""
        return cls(net.space, net.layout, net.cfg.rig_obj.names, net.cfg.encoder.history, mix or TaskMix())

    def __call__(
        self,
        samples: Sequence,
        rng: np.random.Generator | Sequence[np.random.Generator],
        tasks: Sequence[str] | None = None,
    ) -> tuple[TrainBatch, list[str]]:
        """``(batch, tasks)``; ``rng``: one generator for the batch, or one per sample (:func:`sample_rngs`);
        ``tasks`` forces each sample's task instead of drawing it."""
        if not samples:
            raise ValueError("Collator: expected at least one sample")
        if tasks is not None and len(tasks) != len(samples):
            raise ValueError(f"Collator: got {len(tasks)} tasks for {len(samples)} samples")
        rngs = list(rng) if isinstance(rng, Sequence) else [rng] * len(samples)
        if len(rngs) != len(samples):
            raise ValueError(f"Collator: got {len(rngs)} generators for {len(samples)} samples")
        if tasks is None:
            tasks = [choose_task(s, self.mix, r) for s, r in zip(samples, rngs, strict=True)]
        chosen = list(tasks)
        encoded = [
            encode_sample(self.space, self.layout, s, t, r) for s, t, r in zip(samples, chosen, rngs, strict=True)
        ]
        images = []
        for s in samples:
            missing = [c for c in self.cameras if c not in s.images]
            if missing:
                raise ValueError(f"Collator: sample {s.source} lacks camera images {missing} (rig {self.cameras})")
            images.append(np.stack([s.images[c] for c in self.cameras]))
        ego = np.stack([ego_features(s.ego, s.ego_history, self.history) for s in samples])
        batch = TrainBatch(
            images=torch.from_numpy(np.stack(images)),
            ego=torch.from_numpy(ego),
            tokens=torch.from_numpy(np.stack([e.tokens for e in encoded])),
            answer=torch.from_numpy(np.stack([e.answer for e in encoded])),
            present=torch.from_numpy(np.stack([e.present for e in encoded])),
            complex=torch.tensor([e.complex for e in encoded], dtype=torch.float32),
        )
        return batch, chosen


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a permutation of ``range(n)`` fixed by ``(seed, epoch)``, so a
    resumed run replays it without stored state."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def sample_rngs(seed: int, step: int, positions: Sequence[int]) -> list[np.random.Generator]:
    """Task / VQA draws of the samples at ``positions`` of optimiser step ``step``'s global batch."""
    return [np.random.default_rng([int(seed), 1, int(step), int(i)]) for i in positions]


def mask_draws(seed: int, step: int, positions: Sequence[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masking draws of the samples at ``positions`` of step ``step``'s global batch: ``t`` (B,) and
    ``u`` (B, length), uniform in [0, 1) (see :func:`wamdiff_ros.planners.wamdiff.masked_diffusion.mask_tokens`)."""
    t, u = [], []
    for i in positions:
        key = np.random.SeedSequence([int(seed), 2, int(step), int(i)]).generate_state(1, np.uint64)[0]
        g = torch.Generator().manual_seed(int(key) % (2**63))
        t.append(torch.rand(1, generator=g))
        u.append(torch.rand(length, generator=g))
    return torch.cat(t), torch.stack(u)


__all__ = ["Collator", "choose_task", "encode_sample", "epoch_order", "mask_draws", "sample_rngs"]
