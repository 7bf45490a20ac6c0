"""Tokenisation and a vocabulary built from the training split only."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

PAD = "<pad>"
UNK = "<unk>"

# Words (keeping inner apostrophes and hyphens) or single punctuation marks.
_TOKEN_RE = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split raw text into word and punctuation tokens."""
    return _TOKEN_RE.findall(text)


@dataclass
class Vocab:
    """Special symbols first (`<pad>` 0 and `<unk>` 1 by default), then words by frequency."""

    itos: list[str]
    stoi: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None,
        specials: tuple[str, ...] = (PAD, UNK),
    ) -> Vocab:
        """`specials` first, then the words seen at least `min_freq` times by decreasing
        frequency, `max_size` entries in all."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        counts = Counter(tok for toks in token_lists for tok in toks)
        # Ties broken alphabetically so the same data always gives the same indices.
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in specials),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - len(specials))]
        return cls([*specials, *words])

    def with_words(self, words: Iterable[str]) -> Vocab:
        """This vocabulary, then the `words` it lacks, in their order."""
        have = set(self.itos)
        return Vocab([*self.itos, *(w for w in dict.fromkeys(words) if w not in have)])

    @property
    def pad_index(self) -> int:
        return self.stoi[PAD]

    @property
    def unk_index(self) -> int:
        return self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        unk = self.unk_index
        return [self.stoi.get(t, unk) for t in tokens]
