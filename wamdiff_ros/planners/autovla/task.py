"""AutoVLA's supervised objective for the shared training loop.

``prepare`` fits the K-disk action codebook on the training split's logged futures and the threshold
that picks which annotated frames teach slow thinking (both stored in the checkpoint config). A
sample's target answer is ``[THINK] reasoning [ACT] actions`` when the world annotated the frame with
reasoning and its future departs from the constant-twist path by more than that threshold, else
``[ACT] actions``; the loss is cross-entropy on the mode and
action tokens plus ``loss.reasoning_weight`` times cross-entropy on the reasoning tokens, each over the
tokens allowed at its position (as decoding and RL restrict them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from wamdiff_ros.models.encoder import batch_images, ego_features
from wamdiff_ros.planners.autovla.codebook import ActionCodebook, Box
from wamdiff_ros.planners.autovla.net import ACTION, MODE_POS, PAD, REASON, REASON_END
from wamdiff_ros.planning.motion import constant_twist_path
from wamdiff_ros.training.task import DataNeeds
from wamdiff_ros.types import EgoState


@dataclass
class Batch:
    """Network inputs (B, …), answer tokens and kinds (B, A)."""

    images: torch.Tensor
    ego: torch.Tensor
    prompt: torch.Tensor
    answer: torch.Tensor
    kinds: torch.Tensor


def twist_deviation(future: np.ndarray, ego: EgoState, spec) -> float:
    """Largest distance [m] between the logged future (T, 3) and the path holding the current twist."""
    cv = constant_twist_path(ego, spec.times)
    return float(np.linalg.norm(np.asarray(future)[:, :2] - cv[:, :2], axis=-1).max())


def logged_futures(dataset) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(N, T, 3) logged futures of every sample of a DrivingDataset, their reasoning texts and (N,)
    deviations from the constant-twist path [m], read without decoding images."""
    futures, texts, devs = [], [], []
    for b, k in dataset.index:
        bag = dataset.bags[b]
        future, language = bag.target(k, dataset.spec)
        futures.append(future)
        texts.append(language.get("reasoning", ""))
        devs.append(twist_deviation(future, bag.log.frames[k].ego, dataset.spec))
    return np.stack(futures), texts, np.array(devs)


def fit_min_deviation(deviations: np.ndarray, annotated: np.ndarray, slow_fraction: float) -> float:
    """The deviation threshold [m] above which annotated frames reason, so that ``slow_fraction`` of all
    frames do (0.0 when the annotated frames are fewer than that)."""
    dev = np.asarray(deviations, np.float64)[np.asarray(annotated, bool)]
    want = round(slow_fraction * len(deviations))
    if want >= len(dev):
        return 0.0
    if want == 0:
        return float(dev.max())
    return float(np.sort(dev)[::-1][want])


class AutoVLATask:
    """:class:`~wamdiff_ros.training.task.SupervisedTask` of an :class:`AutoVLAPlanner`."""

    def __init__(self, planner, **settings):
        if settings:
            raise ValueError(f"autovla supervised settings: unknown {sorted(settings)} (none are known)")
        self.planner = planner
        self.net = planner.network()

    def data_needs(self) -> DataNeeds:
        p = self.planner
        return DataNeeds(rig=p.rig, spec=p.spec, history=p.history, scenes=False, past_frame_s=p.past_frame_s)

    def prepare(self, train_set) -> dict:
        cb = self.net.cfg.codebook
        futures, texts, devs = logged_futures(train_set)
        annotated = np.array([bool(t) for t in texts])
        think = self.net.cfg.thinking
        think.min_deviation_m = fit_min_deviation(devs, annotated, think.slow_fraction)
        book = ActionCodebook.fit(futures, cb.size, cb.tolerance, Box(cb.box_length, cb.box_width), cb.seed)
        self.net.set_codebook(book.primitives)
        return {
            "codebook_tokens": len(book),
            "codebook_train_error": book.reconstruction_error(futures),
            "annotated": float(annotated.mean()),
            "min_deviation_m": think.min_deviation_m,
            "slow_targets": float((annotated & (devs > think.min_deviation_m)).mean()),
            "reasoning_words_max": max((len(self.net.text.encode(t)) for t in texts), default=0),
        }

    def collate(self, samples: list, rngs: list[np.random.Generator]) -> Batch:
        net = self.net
        h = self.planner.history
        names = self.planner.rig.names
        images = batch_images(samples, names, self.planner.cfg.encoder.frames)
        ego = torch.from_numpy(np.stack([ego_features(s.ego, s.ego_history, h) for s in samples]))
        prompt = torch.from_numpy(np.stack([net.prompt_ids(s.command, s.instruction) for s in samples]))
        actions = net.codebook.encode(np.stack([s.future for s in samples]))
        answers = [net.answer_ids(self.reasoning_target(s), a) for s, a in zip(samples, actions)]
        a = max(len(x) for x in answers)
        answer = torch.full((len(samples), a), net.text.pad_id, dtype=torch.long)
        kinds = torch.full((len(samples), a), PAD, dtype=torch.long)
        for i, x in enumerate(answers):
            answer[i, : len(x)] = torch.tensor(x)
            kinds[i, : len(x)] = torch.tensor(net.answer_kinds(x))
        return Batch(images, ego, prompt, answer, kinds)

    def reasoning_target(self, sample) -> str:
        """The sample's reasoning text when it teaches slow thinking (see ``ThinkingConfig``), else ""."""
        text = sample.language.get("reasoning", "")
        threshold = self.net.cfg.thinking.min_deviation_m
        if not text or threshold is None:
            return text
        return text if twist_deviation(sample.future, sample.ego, self.planner.spec) > threshold else ""

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.net.forward_train(batch.images, batch.ego, batch.prompt, batch.answer)
        allowed = self.net.kind_masks()[batch.kinds]
        allowed[batch.kinds == PAD] = True
        nll = -logits.float().masked_fill(~allowed, float("-inf")).log_softmax(-1)
        nll = nll.gather(-1, batch.answer[..., None]).squeeze(-1)
        act = (batch.kinds == ACTION) | (batch.kinds == MODE_POS)
        rea = batch.kinds == REASON
        act_loss = nll[act].mean()
        rea_loss = nll[rea].mean() if rea.any() else nll.new_zeros(())
        loss = act_loss + self.net.cfg.loss.reasoning_weight * rea_loss
        mode_acc = (nll[batch.kinds == MODE_POS] < np.log(2.0)).float().mean()
        parts = {"action_ce": float(act_loss.detach()), "reasoning_ce": float(rea_loss.detach())}
        parts["mode_acc"] = float(mode_acc)
        parts["forced"] = float((batch.kinds == REASON_END).sum())
        return loss, parts

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]


def scenario_counts(dataset) -> dict[str, int]:
    """Samples per scenario name (for mode-choice reports)."""
    return dict(Counter(dataset.bags[b].log.frames[k].scenario for b, k in dataset.index))


__all__ = ["AutoVLATask", "Batch", "fit_min_deviation", "logged_futures", "scenario_counts", "twist_deviation"]
