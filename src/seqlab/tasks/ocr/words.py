"""Words to render: dictionary words, random numbers and random strings, mixed by ratios.

Dictionary words keep their original spelling for rendering ("London"); their labels are
`charset.normalize(word)`, so a caseless charset learns to read both cases. Random strings and
numbers are drawn from the charset itself. Everything is drawn from the `numpy.random.Generator`
passed in, so the same generator state always gives the same words.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

import numpy as np

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.trdg_compat import trdg_dir

# Order of the kinds in WordSource.sample's draw; fixed so results do not depend on dict order.
KINDS = ("dictionary", "number", "random")


def dictionary_path(lang: str = "en") -> Path:
    return trdg_dir() / "dicts" / f"{lang}.txt"


@cache
def _dictionary(path: Path, charset: Charset, min_len: int, max_len: int) -> tuple[str, ...]:
    """Unique dictionary entries (file order) whose label fits the charset and length range."""
    words = dict.fromkeys(
        w
        for w in path.read_text(encoding="utf-8", errors="ignore").splitlines()
        if min_len <= len(charset.normalize(w)) <= max_len and charset.accepts(w)
    )
    return tuple(words)


class WordSource:
    """Draws words to render; `dictionary_ratio + number_ratio <= 1`, the rest are random strings."""

    def __init__(
        self,
        charset: Charset,
        min_len: int,
        max_len: int,
        dictionary_ratio: float,
        number_ratio: float,
        dictionary: Path | None = None,
    ) -> None:
        if not 1 <= min_len <= max_len:
            raise ValueError(f"word lengths need 1 <= min_len <= max_len (got {min_len}, {max_len})")
        if dictionary_ratio < 0 or number_ratio < 0 or dictionary_ratio + number_ratio > 1:
            raise ValueError(
                f"word ratios need dictionary_ratio, number_ratio >= 0 and a sum <= 1 "
                f"(got {dictionary_ratio}, {number_ratio})"
            )
        self.charset = charset
        self.min_len, self.max_len = min_len, max_len
        self.probs = np.array([dictionary_ratio, number_ratio, 1 - dictionary_ratio - number_ratio])
        self.words = _dictionary(dictionary or dictionary_path(), charset, min_len, max_len) if dictionary_ratio else ()
        if dictionary_ratio and not self.words:
            raise ValueError(f"no dictionary word of {min_len}-{max_len} characters fits charset {charset.name!r}")
        self.digits = "".join(c for c in string.digits if charset.accepts(c))
        if number_ratio and len(self.digits) < 10:
            raise ValueError(f"number_ratio > 0 needs all ten digits in charset {charset.name!r}")

    def sample(self, rng: np.random.Generator, n: int) -> list[str]:
        """`n` words to render, each kind chosen by the ratios."""
        kinds = rng.choice(len(KINDS), size=n, p=self.probs)
        lengths = rng.integers(self.min_len, self.max_len + 1, size=n)
        out = []
        for kind, length in zip(kinds.tolist(), lengths.tolist(), strict=True):
            if KINDS[kind] == "dictionary":
                out.append(self.words[rng.integers(len(self.words))])
            elif KINDS[kind] == "number":
                # No leading zero, so numbers look like numbers.
                out.append(str(rng.integers(1, 10)) + "".join(rng.choice(list(self.digits), size=length - 1)))
            else:
                out.append("".join(rng.choice(list(self.charset.chars), size=length)))
        return out
