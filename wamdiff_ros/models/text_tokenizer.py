"""Word-level text tokenizer over the world's closed vocabulary.

The simulated world's language (commands, instructions, VQA, reasoning) comes from templates, so a
word-level vocabulary covers it exactly and keeps sequences short. Text is lowercased and split into
words (letters, underscores, apostrophes), single digits (so any number is spelled by ten tokens) and
single punctuation marks; a word outside the vocabulary becomes ``[UNK]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from wamdiff_ros.types import COMMANDS

SPECIALS: tuple[str, ...] = ("[PAD]", "[MASK]", "[UNK]", "[SEP]", "[BOS]", "[EOS]", "[PLAN]", "[VQA]")
"""Special tokens, ids 0…7 in this order: padding, the diffusion mask, unknown word, separator,
sequence start, end of an answer, task tags (plan / visual question answering)."""

DIGITS: tuple[str, ...] = tuple("0123456789")
PUNCTUATION: tuple[str, ...] = tuple(".,;:!?-/%()'\"")
_BASE_TEXT = """
a an the is are was be to of in on at and or not no yes it this that there ahead behind left right
straight front rear lane lanes road car cars vehicle vehicles truck ego my our keep change turn stop
slow down speed up accelerate decelerate brake follow merge exit junction intersection light red
yellow green traffic pedestrian cyclist m s km h mps meters seconds because so then go continue
yield wait clear safe gap close far near next current target lead leading distance fast slowly
maintain highway ramp roundabout
"""
BASE_WORDS: tuple[str, ...] = (*COMMANDS, *_BASE_TEXT.split())
"""Words every tokenizer has, whatever the world's list adds."""

_SPLIT = re.compile(r"[a-z_]+(?:'[a-z]+)?|\d|[^\sa-z_\d]")
_NO_SPACE_BEFORE = set(".,;:!?%)/-")
_NO_SPACE_AFTER = set("(/-")


def split_words(text: str) -> list[str]:
    """Lowercase ``text`` and split it into words, single digits and single punctuation marks."""
    if not isinstance(text, str):
        raise ValueError(f"text: expected str, got {type(text).__name__}")
    return _SPLIT.findall(text.lower())


class TextTokenizer:
    """Maps text to word ids and back.

    Ids: :data:`SPECIALS` first (``[PAD]`` = 0, ``[MASK]`` = 1, …), then digits, punctuation, the base
    words, then the given words in first-seen order (duplicates and words already present dropped).
    A checkpoint stores the resulting token list and rebuilds it verbatim with :meth:`from_tokens`, so
    its ids never shift when the base words of the code change.
    """

    def __init__(self, words: Iterable[str] = ()):
        tokens: list[str] = list(SPECIALS)
        seen = set(tokens)
        for w in (*DIGITS, *PUNCTUATION, *BASE_WORDS, *words):
            if not isinstance(w, str):
                raise ValueError(f"TextTokenizer words: expected strings, got {w!r}")
            for piece in () if w in SPECIALS else split_words(w):
                if piece not in seen:
                    seen.add(piece)
                    tokens.append(piece)
        self._set(tokens)

    @classmethod
    def from_tokens(cls, tokens: list[str]) -> TextTokenizer:
        """The tokenizer with exactly this id -> token list (as saved by :attr:`tokens`)."""
        tokens = [str(t) for t in tokens]
        if tokens[: len(SPECIALS)] != list(SPECIALS) or len(set(tokens)) != len(tokens):
            raise ValueError(f"text tokens: expected unique tokens starting with {list(SPECIALS)}")
        tok = cls.__new__(cls)
        tok._set(tokens)
        return tok

    def _set(self, tokens: list[str]) -> None:
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        for name in SPECIALS:
            setattr(self, name.strip("[]").lower() + "_id", self.index[name])
        self.num_specials = len(SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def word_ids(self) -> range:
        """Ids of non-special tokens (what a text answer may contain besides ``[EOS]``/``[PAD]``)."""
        return range(self.num_specials, len(self.tokens))

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text`` (no specials added); unknown words map to ``[UNK]``."""
        return [self.index.get(w, self.unk_id) for w in split_words(text)]

    def decode(self, ids: Sequence[int], stop_at_eos: bool = True) -> str:
        """Text of ``ids``: specials dropped, stopping at ``[EOS]``; digits of a number and decimal
        points between digits are joined, punctuation attaches to the previous word, ``/`` and ``-``
        join their neighbours. The result is the input's canonical form (lowercase, normalised spaces)."""
        words: list[str] = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"decode: token id {i} outside the text vocabulary (size {len(self.tokens)})")
            if stop_at_eos and i == self.eos_id:
                break
            if i >= self.num_specials or i == self.unk_id:
                words.append(self.tokens[i])
        out = ""
        for k, w in enumerate(words):
            prev = words[k - 1] if k else ""
            number_part = w.isdigit() and (prev.isdigit() or (prev == "." and k >= 2 and words[k - 2].isdigit()))
            glued = not out or w in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER or number_part
            out += w if glued else " " + w
        return out

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens)}
