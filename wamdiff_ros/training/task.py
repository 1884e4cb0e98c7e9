"""What the shared supervised training loop needs from a planner family.

A family's :meth:`~wamdiff_ros.planners.base.Planner.supervised_task` returns a :class:`SupervisedTask`;
the loop (data order, sharding across ranks, optimiser, schedule, progress bar, checkpoints, resume,
validation, Ctrl-C) is shared and names no family. Random draws inside :meth:`SupervisedTask.collate`
come from ``rngs``, one generator per sample fixed by (seed, step, position in the global batch), so a
run split over ranks draws exactly what one process would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from wamdiff_ros.rig import Rig
from wamdiff_ros.types import TrajectorySpec


@dataclass(frozen=True)
class DataNeeds:
    """What the task reads from a :class:`~wamdiff_ros.data.dataset.DrivingDataset`.

    Attributes:
        rig: cameras (order, size) the images are fitted to.
        spec: trajectory grid of the logged future targets.
        history: past ego poses per sample.
        scenes: whether samples need scene truth (scorer labels, rewards); slower to load.
        past_frame_s: age [s] of the past camera set per sample (0: none).
        extras: family-specific dataset options (e.g. a label file beside the dataset cache).
    """

    rig: Rig
    spec: TrajectorySpec
    history: int = 0
    scenes: bool = False
    past_frame_s: float = 0.0
    extras: dict = field(default_factory=dict)


class SupervisedTask(Protocol):
    """One family's supervised objective.

    Attributes:
        planner: the planner whose ``network()`` is trained (and validated by open-loop PDMS).
    """

    planner: Any

    def data_needs(self) -> DataNeeds:
        """What each sample must carry."""
        ...

    def prepare(self, train_set) -> dict:
        """Fit the data-derived parts before the first step (anchors, codebook, vocabulary …; they go
        into the checkpoint config). Called once on a fresh config (a new run, or ``--init`` with
        ``--model``), never on resume or plain fine-tuning, whose weights were trained against the
        init's parts; returns a report for the log."""
        ...

    def collate(self, samples: list, rngs: list[np.random.Generator]) -> Any:
        """A training batch of dataset ``samples`` (random draws from ``rngs``, one per sample)."""
        ...

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise on ``batch`` and its parts (floats, for the log)."""
        ...

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates."""
        ...


SAMPLE_STREAM = 1
"""Stream id of the per-sample generators the loop hands to :meth:`SupervisedTask.collate`."""


def sample_rngs(seed: int, step: int, positions) -> list[np.random.Generator]:
    """The generators of the samples at ``positions`` of optimiser step ``step``'s global batch."""
    return [np.random.default_rng([int(seed), SAMPLE_STREAM, int(step), int(i)]) for i in positions]


def torch_stream(rng: np.random.Generator, stream: int) -> torch.Generator:
    """A torch generator keyed on the same (seed, step, position) as the per-sample ``rng`` of
    :func:`sample_rngs` but on stream ``stream`` (> 1): independent of ``rng``'s own draws, and the
    same whatever ``rng`` has drawn already (e.g. a family's masking noise beside its numpy draws)."""
    seq = rng.bit_generator.seed_seq
    key = list(seq.entropy) if isinstance(seq, np.random.SeedSequence) and isinstance(seq.entropy, list) else []
    if len(key) != 4 or key[1] != SAMPLE_STREAM or int(stream) == SAMPLE_STREAM:
        raise ValueError(f"torch_stream: expected a generator of sample_rngs and another stream, got {key}, {stream}")
    key[1] = int(stream)
    state = np.random.SeedSequence(key).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) % (2**63))


__all__ = ["SAMPLE_STREAM", "DataNeeds", "SupervisedTask", "sample_rngs", "torch_stream"]
