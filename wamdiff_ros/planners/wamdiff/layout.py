"""One token space and one sequence layout for every task (motion, VQA, reasoning).

Token space (ids): text tokens (specials, digits, punctuation, words) · x-bin tokens · y-bin tokens.
An answer of any task is a run of masked tokens in this one space.

Sequence: ``[scene tokens + ego token | prompt (P) | text answer (R) | trajectory (T = 2·poses)]``.

- prompt: ``[BOS] [PLAN]|[VQA] <command> [SEP] <instruction or question> [SEP] [PAD]…`` (never masked).
- text answer: reasoning (slow planning) or a VQA answer, ``words… [EOS] [PAD]…``.
- trajectory: ``x0 y0 x1 y1 …`` bin tokens.

Attention is block-causal over the three blocks ``prefix = scene + prompt`` → ``text`` → ``trajectory``
and bidirectional inside each block: the prefix never sees answers, the text block sees the prefix,
the trajectory sees both. So the prefix is encoded once per frame (exact key/value cache), reasoning
is produced before the trajectory and conditions it, and fast mode simply omits the text block.
Position ids are fixed per slot (prompt 0…P-1, text P…P+R-1, trajectory P+R…), whether or not the
text block is present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wamdiff_ros.models.text_tokenizer import TextTokenizer
from wamdiff_ros.planners.wamdiff.trajectory_tokenizer import TrajectoryTokenizer
from wamdiff_ros.types import COMMANDS, EgoState

TASKS: tuple[str, ...] = ("motion", "reasoning", "vqa")
"""motion: trajectory only; reasoning: reasoning text then trajectory; vqa: question -> text answer."""


class TokenSpace:
    """The joint vocabulary: ``len(text)`` text ids, then ``nx`` x-bin ids, then ``ny`` y-bin ids."""

    def __init__(self, text: TextTokenizer, traj: TrajectoryTokenizer):
        self.text = text
        self.traj = traj
        self.x_offset = len(text)
        self.y_offset = len(text) + traj.x.size
        self.size = self.y_offset + traj.y.size

    def __len__(self) -> int:
        return self.size

    def encode_trajectory(self, waypoints: np.ndarray, ego: EgoState | None = None) -> np.ndarray:
        """(T, 2|3) waypoints from ``ego`` -> (2T,) token ids in the joint space."""
        local = self.traj.encode(waypoints, ego)
        local[0::2] += self.x_offset
        local[1::2] += self.y_offset
        return local

    def decode_trajectory(self, ids: np.ndarray, ego: EgoState | None = None) -> np.ndarray:
        """(2T,) joint ids -> (T, 3) poses from ``ego``; raises ValueError if an id is not a bin of its axis."""
        ids = np.asarray(ids, np.int64).reshape(-1).copy()
        x, y = ids[0::2] - self.x_offset, ids[1::2] - self.y_offset
        if (x < 0).any() or (x >= self.traj.x.size).any() or (y < 0).any() or (y >= self.traj.y.size).any():
            raise ValueError(f"trajectory ids: expected x bins at even and y bins at odd positions, got {ids}")
        ids[0::2], ids[1::2] = x, y
        return self.traj.decode(ids, ego)

    def trajectory_allowed(self) -> np.ndarray:
        """(2T, V) bool: x-bin tokens at even positions, y-bin tokens at odd positions."""
        allowed = np.zeros((self.traj.num_tokens, self.size), bool)
        allowed[0::2, self.x_offset : self.y_offset] = True
        allowed[1::2, self.y_offset :] = True
        return allowed

    def text_allowed(self, length: int) -> np.ndarray:
        """(length, V) bool: word tokens, ``[EOS]`` and ``[PAD]`` anywhere in a text answer."""
        allowed = np.zeros((length, self.size), bool)
        allowed[:, self.text.num_specials : self.x_offset] = True
        allowed[:, [self.text.eos_id, self.text.pad_id]] = True
        return allowed


@dataclass(frozen=True)
class SequenceLayout:
    """Lengths and slot offsets of the token blocks after the scene tokens.

    Attributes:
        scene_len: scene tokens of all cameras + 1 ego token.
        prompt_len: P; text_len: R; traj_len: T (2 tokens per waypoint).
    """

    scene_len: int
    prompt_len: int
    text_len: int
    traj_len: int

    @property
    def prefix_len(self) -> int:
        return self.scene_len + self.prompt_len

    @property
    def tokens_len(self) -> int:
        """Token ids of one training sample: prompt + text + trajectory."""
        return self.prompt_len + self.text_len + self.traj_len

    @property
    def text_offset(self) -> int:
        """Position id of the first text-answer token."""
        return self.prompt_len

    @property
    def traj_offset(self) -> int:
        return self.prompt_len + self.text_len

    def prompt_ids(self, text: TextTokenizer, command: str, words: str = "", task: str = "plan") -> np.ndarray:
        """(P,) prompt ids ``[BOS] [PLAN]|[VQA] command [SEP] words [SEP] [PAD]…`` (words truncated to fit)."""
        if command not in COMMANDS:
            raise ValueError(f"command: expected one of {COMMANDS}, got {command!r}")
        if task not in ("plan", "vqa"):
            raise ValueError(f"prompt task: expected 'plan' or 'vqa', got {task!r}")
        tag = text.plan_id if task == "plan" else text.vqa_id
        head = [text.bos_id, tag, text.index[command], text.sep_id]
        body = text.encode(words)[: self.prompt_len - len(head) - 1]
        ids = np.full(self.prompt_len, text.pad_id, np.int64)
        seq = [*head, *body, text.sep_id]
        ids[: len(seq)] = seq
        return ids

    def text_answer_ids(self, text: TextTokenizer, answer: str) -> np.ndarray:
        """(R,) ids ``words… [EOS] [PAD]…`` (words truncated to R-1)."""
        words = text.encode(answer)[: self.text_len - 1]
        ids = np.full(self.text_len, text.pad_id, np.int64)
        ids[: len(words)] = words
        ids[len(words)] = text.eos_id
        return ids


@dataclass
class Sample:
    """One training sample (numpy).

    Attributes:
        tokens: (P+R+T,) target ids of prompt, text answer and trajectory.
        answer: (P+R+T,) bool, True where the token is an answer (maskable and scored).
        present: (2,) bool, whether the (text, trajectory) blocks exist for this task.
        complex: 1.0 when the scene has reasoning text (the complexity head's label), else 0.0.
    """

    tokens: np.ndarray
    answer: np.ndarray
    present: np.ndarray
    complex: float


def make_sample(
    space: TokenSpace,
    layout: SequenceLayout,
    task: str,
    command: str,
    prompt_text: str = "",
    answer_text: str = "",
    waypoints: np.ndarray | None = None,
    complex_scene: bool | None = None,
    ego: EgoState | None = None,
) -> Sample:
    """Build the target tokens of one sample.

    ``motion`` needs ``waypoints``; ``reasoning`` needs ``answer_text`` (the reasoning) and
    ``waypoints``; ``vqa`` needs ``answer_text`` (``prompt_text`` is the question). The complexity
    label defaults to "this sample has reasoning text". ``ego``: the state the waypoints start from
    (needed when the trajectory tokens have a prior).
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    need_traj = task in ("motion", "reasoning")
    if need_traj and waypoints is None:
        raise ValueError(f"task {task!r}: waypoints are required")
    if task != "motion" and not answer_text:
        raise ValueError(f"task {task!r}: answer_text is required")
    text = space.text
    prompt = layout.prompt_ids(text, command, prompt_text, "vqa" if task == "vqa" else "plan")
    body = layout.text_answer_ids(text, answer_text) if task != "motion" else np.full(layout.text_len, text.pad_id)
    traj = space.encode_trajectory(waypoints, ego) if need_traj else np.full(layout.traj_len, text.pad_id)
    answer = np.zeros(layout.tokens_len, bool)
    if task != "motion":
        answer[layout.text_offset : layout.traj_offset] = True
    if need_traj:
        answer[layout.traj_offset :] = True
    present = np.array([task != "motion", need_traj])
    label = task == "reasoning" if complex_scene is None else bool(complex_scene)
    return Sample(np.concatenate([prompt, body, traj]).astype(np.int64), answer, present, float(label))
