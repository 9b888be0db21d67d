"""Line texts cut from prose: windows of whole words from one passage of the corpus (seqlab.tasks.ocr.synth.corpus).

A scanned document's lines start and end anywhere in a sentence, so a window does too: it starts at a word
drawn uniformly from the corpus (a long passage gives more windows than a short one, in proportion to its
words) and takes the following words while the line stays within a length drawn uniformly in
[min_chars, max_chars]; at the end of a passage it takes the words before the start instead. A window
shorter than `min_chars` (a passage's last words, or a word longer than the drawn length) is drawn again.

A window holds only words the charset accepts and never spans one it refuses: with a charset without "$",
"Bank error in your favor. Collect $200." gives windows of "Bank error in your favor. Collect" and none
across "$200.". Words keep their case for rendering; labels are `charset.normalize(window)`. Everything is
drawn from the `numpy.random.Generator` passed in, so the same generator state gives the same windows.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.synth.corpus import read_passages

PROSE_KIND = "prose"  # the kind of a window's image in the data (seqlab.tasks.ocr.data, `kinds`)
MAX_DRAWS = 1000  # per window; a usable corpus needs a handful at most


class ProseSource:
    """Draws windows of `min_chars`..`max_chars` characters from `passages` (text as written, one passage each)."""

    def __init__(self, passages: Sequence[str], charset: Charset, min_chars: int, max_chars: int) -> None:
        if not 1 <= min_chars <= max_chars:
            raise ValueError(f"prose windows need 1 <= min_chars <= max_chars (got {min_chars}, {max_chars})")
        self.min_chars, self.max_chars = min_chars, max_chars
        glyphs = set(charset.glyphs)
        fold = str.lower if charset.caseless else str
        self.words: list[str] = []
        self.runs: list[int] = []  # start of each run of accepted words in `words`; run r ends where r + 1 starts
        for passage in passages:
            run: list[str] = []
            for word in [*passage.split(), None]:
                if word is not None and len(word) <= max_chars and glyphs.issuperset(fold(word)):
                    run.append(word)
                    continue
                if run and sum(map(len, run)) + len(run) - 1 >= min_chars:  # runs too short for a window are left out
                    self.runs.append(len(self.words))
                    self.words += run
                run = []
        if not self.words:
            raise ValueError(f"no passage holds {min_chars}+ characters of words that charset {charset.name!r} accepts")
        self.lengths = [len(w) for w in self.words]

    @classmethod
    def from_corpus(cls, split: str, charset: Charset, min_chars: int, max_chars: int,
                    directory: Path | None = None) -> ProseSource:
        """Windows of data/ocr-corpus/<split>.txt (or of `directory`'s)."""
        return cls(read_passages(split, directory), charset, min_chars, max_chars)

    def sample(self, rng: np.random.Generator, n: int) -> list[str]:
        """`n` windows, each a run of whole words joined by single spaces."""
        return [self._window(rng) for _ in range(n)]

    def _window(self, rng: np.random.Generator) -> str:
        for _ in range(MAX_DRAWS):
            limit = int(rng.integers(self.min_chars, self.max_chars + 1))
            first = int(rng.integers(len(self.words)))
            run = bisect.bisect_right(self.runs, first) - 1
            run_start = self.runs[run]
            run_end = self.runs[run + 1] if run + 1 < len(self.runs) else len(self.words)
            lo, hi, size = first, first + 1, self.lengths[first]
            while hi < run_end and size + 1 + self.lengths[hi] <= limit:
                size += 1 + self.lengths[hi]
                hi += 1
            while hi == run_end and lo > run_start and size + 1 + self.lengths[lo - 1] <= limit:
                lo -= 1
                size += 1 + self.lengths[lo]
            if self.min_chars <= size <= limit:
                return " ".join(self.words[lo:hi])
        raise ValueError(f"no window of {self.min_chars}-{self.max_chars} characters in {MAX_DRAWS} draws")
