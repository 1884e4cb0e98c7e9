"""WAM-Diff's supervised objective (:class:`WamDiffTask`, a :class:`~wamdiff_ros.training.task.SupervisedTask`).

Each sample draws a task from the :class:`TaskMix`:

- ``motion``: plan prompt (command + instruction) → trajectory (the fast path);
- ``reasoning``: plan prompt → reasoning text, then the trajectory conditioned on it (the slow path);
  ticks without reasoning text (plain cruising) fall back to ``motion``;
- ``vqa``: one of the tick's question–answer pairs (question in the prompt, answer as text); falls
  back to ``motion`` when the tick has none.

The complexity label is "the tick has reasoning text" whatever task was drawn, so the gate's head
sees every sample. The loss is LLaDA's on the masked answer tokens plus the MoE balance loss and the
complexity head's BCE (:func:`~wamdiff_ros.planners.wamdiff.masked_diffusion.compute_losses`).

Every draw of a sample (task, VQA pair, masking) comes from its own generator, fixed by the training
loop by ``(seed, step, position in the global batch)``, so a rank holding a shard of the batch draws
exactly what a single process holding all of it would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wamdiff_ros.config import ConfigError
from wamdiff_ros.models.encoder import ego_features, image_stack
from wamdiff_ros.planners.wamdiff.layout import TASKS, Sample, SequenceLayout, TokenSpace, make_sample
from wamdiff_ros.planners.wamdiff.masked_diffusion import TrainBatch, compute_losses
from wamdiff_ros.training.task import DataNeeds, torch_stream

MASK_STREAM = 2
"""Stream of a sample's masking draws (:func:`~wamdiff_ros.training.task.torch_stream`)."""


@dataclass(frozen=True)
class TaskMix:
    """Relative sampling weights of the tasks (normalised); a tick without reasoning text or VQA pairs
    falls back to ``motion`` for those draws."""

    motion: float = 0.45
    reasoning: float = 0.40
    vqa: float = 0.15

    def __post_init__(self):
        w = self.weights()
        if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
            raise ConfigError(f"training mix: expected non-negative weights with a positive sum, got {self}")

    def weights(self) -> list[float]:
        return [float(getattr(self, t)) for t in TASKS]

    def probabilities(self) -> list[float]:
        """Probabilities in :data:`~wamdiff_ros.planners.wamdiff.layout.TASKS` order."""
        w = self.weights()
        return [v / sum(w) for v in w]


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
        frames: camera sets per sample (the encoder's ``frames``: 2 adds ``Sample.past_images``).
    """

    def __init__(
        self,
        space: TokenSpace,
        layout: SequenceLayout,
        cameras: Sequence[str],
        history: int,
        mix: TaskMix,
        frames: int = 1,
    ):
        self.space = space
        self.layout = layout
        self.cameras = list(cameras)
        self.history = int(history)
        self.mix = mix
        self.frames = int(frames)

    @classmethod
    def for_net(cls, net, mix: TaskMix | None = None) -> Collator:
        """A collator for a :class:`~wamdiff_ros.planners.wamdiff.net.WamDiffNet`."""
        enc = net.cfg.encoder
        return cls(net.space, net.layout, net.cfg.rig_obj.names, enc.history, mix or TaskMix(), enc.frames)

    def __call__(
        self,
        samples: Sequence,
        rng: np.random.Generator | Sequence[np.random.Generator],
        tasks: Sequence[str] | None = None,
    ) -> tuple[TrainBatch, list[str]]:
        """``(batch, tasks)``; ``rng``: one generator for the batch, or one per sample (``sample_rngs``);
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
            images.append(image_stack(self.cameras, s.images, s.past_images, self.frames))
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


def mask_draws(rngs: Sequence[np.random.Generator], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masking draws of the samples of ``rngs`` (:func:`~wamdiff_ros.training.task.sample_rngs`): ``t``
    (B,) and ``u`` (B, length), uniform in [0, 1) (see
    :func:`~wamdiff_ros.planners.wamdiff.masked_diffusion.mask_tokens`)."""
    t, u = [], []
    for rng in rngs:
        g = torch_stream(rng, MASK_STREAM)
        t.append(torch.rand(1, generator=g))
        u.append(torch.rand(length, generator=g))
    return torch.cat(t), torch.stack(u)


@dataclass
class MaskedBatch:
    """A :class:`TrainBatch` with its masking draws ``t`` (B,) and ``u`` (B, L)."""

    data: TrainBatch
    t: torch.Tensor
    u: torch.Tensor


class WamDiffTask:
    """:class:`~wamdiff_ros.training.task.SupervisedTask` of a :class:`WamDiffPlanner`'s network.

    Args:
        planner: the planner being trained; validation plans on its fast path.
        mix: task sampling weights (a mapping of :class:`TaskMix` fields, or one).
    """

    def __init__(self, planner, mix: TaskMix | dict | None = None):
        if isinstance(mix, dict):
            try:
                mix = TaskMix(**mix)
            except TypeError as e:
                raise ConfigError(f"training family.mix: expected keys {list(TASKS)}: {e}") from e
        self.planner = planner
        self.net = planner.network()
        self.collator = Collator.for_net(self.net, mix)

    def data_needs(self) -> DataNeeds:
        cfg = self.net.cfg
        return DataNeeds(
            rig=cfg.rig_obj, spec=cfg.spec, history=cfg.encoder.history, past_frame_s=cfg.encoder.past_frame_s
        )

    def prepare(self, train_set) -> dict:
        return {}

    def collate(self, samples: list, rngs: list[np.random.Generator]) -> MaskedBatch:
        batch, _ = self.collator(samples, rngs)
        return MaskedBatch(batch, *mask_draws(rngs, batch.tokens.shape[1]))

    def loss(self, batch: MaskedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        losses = compute_losses(self.net, batch.data, t=batch.t, u=batch.u)
        return losses["total"], {k: float(v.detach()) for k, v in losses.items() if k != "total"}

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())


__all__ = ["Collator", "MaskedBatch", "TaskMix", "WamDiffTask", "choose_task", "encode_sample", "mask_draws"]
