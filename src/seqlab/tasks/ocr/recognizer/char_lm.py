"""A character n-gram language model for CTC beam search: counts, Witten-Bell smoothing, one .npz file.

Why characters, not words: the recognizer reads words, numbers, codes and random strings as well as prose,
and its charset has capitals and punctuation. A character model scores all of them; a word model would
push every unknown string towards a dictionary word. Witten-Bell interpolation (each order backs off to
the next shorter context in proportion to how many different characters followed it) is what SRILM and
the character models of the OCR literature use for small corpora; it needs no tuned discount.

A text's first characters see a context of spaces: the start of a word image or a line looks like the
start of any word. The model's alphabet is the charset it was built for; :meth:`CharLM.log_probs` answers
a context with one log-probability per character of that alphabet (natural log).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.core import paths
from seqlab.core.errors import CheckpointError
from seqlab.tasks.ocr.charset import Charset

PAD = " "  # the context before a text's first character
FORMAT = "seqlab-char-lm-1"
LM_FILE = paths.MODELS / "ocr-lm.npz"  # the `ocr-lm` stage's output


def lm_path() -> Path:
    """models/ocr-lm.npz, anchored at the project root when run from elsewhere."""
    return paths.in_workspace(LM_FILE)


@dataclass(frozen=True)
class CountTable:
    """The (context, next character) counts of one context length, rows sorted by context key.

    A context of k characters has the key sum(index(c_i) * V**i) for alphabet size V (fits int64 for the
    orders used): lookups are one binary search, and a file loads without building a dict per context.
    """

    keys: np.ndarray  # int64, sorted: one per context
    indptr: np.ndarray  # row r's entries are [indptr[r], indptr[r + 1])
    chars: np.ndarray  # alphabet index of each entry's next character
    counts: np.ndarray  # float64 counts

    def row(self, key: int) -> int | None:
        at = int(np.searchsorted(self.keys, key))
        return at if at < len(self.keys) and self.keys[at] == key else None


class CharLM:
    """Counts of (context, next character) for context lengths 0 .. order-1, over a fixed alphabet."""

    def __init__(self, alphabet: str, order: int, tables: list[CountTable]) -> None:
        if tables and len(tables) != order:
            raise ValueError(f"an order-{order} model needs {order} count tables, got {len(tables)}")
        if order < 1 or len(alphabet) ** max(0, order - 1) >= 2**62:
            raise ValueError(f"order {order} over {len(alphabet)} characters is out of range")
        self.alphabet, self.order, self.tables = alphabet, order, tables
        self._index = {ch: i for i, ch in enumerate(alphabet)}
        self._cache: dict[str, np.ndarray] = {}

    # --- building ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: Iterable[str], alphabet: str, order: int) -> CharLM:
        """Count every text's characters in their contexts; a text with a character outside the alphabet is skipped."""
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        allowed = set(alphabet)
        grams: Counter[str] = Counter()  # context (order-1 chars) + next char
        pad = PAD * (order - 1)
        for text in texts:
            if not text or not allowed.issuperset(text):
                continue
            padded = pad + text
            grams.update(padded[i:i + order] for i in range(len(text)))
        lm = cls(alphabet, order, [])
        if not grams:
            raise ValueError("no text in the alphabet to count")
        coded = np.array([[lm._index[ch] for ch in gram] for gram in grams], dtype=np.int64)  # (n, order)
        weights = np.fromiter(grams.values(), np.float64, len(grams))
        size = len(alphabet)
        for k in range(order):  # k = context length; a shorter context sums the longer ones' counts
            context = coded[:, order - 1 - k:order - 1]
            keys = (context * size ** np.arange(k, dtype=np.int64)).sum(axis=1) if k else np.zeros(len(coded), np.int64)
            pairs, where = np.unique(keys * size + coded[:, -1], return_inverse=True)
            counts = np.bincount(where, weights=weights)
            contexts = pairs // size
            starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]])
            lm.tables.append(CountTable(contexts[starts], np.r_[starts, len(pairs)].astype(np.int64),
                                        (pairs % size).astype(np.int16), counts))
        return lm

    # --- scoring ----------------------------------------------------------------------------------
    def log_probs(self, context: str) -> np.ndarray:
        """log P(next character | the last order-1 characters of context), one entry per alphabet character."""
        context = (PAD * (self.order - 1) + context)[-(self.order - 1):] if self.order > 1 else ""
        found = self._cache.get(context)
        if found is None:
            if len(self._cache) > 200_000:  # a long decode visits few contexts; this only bounds memory
                self._cache.clear()
            found = self._cache[context] = np.log(self._probs(context))
        return found

    def _key(self, indices: list[int]) -> int:
        key = 0
        for i in reversed(indices):
            key = key * len(self.alphabet) + i
        return key

    def _probs(self, context: str) -> np.ndarray:
        probs = np.full(len(self.alphabet), 1.0 / len(self.alphabet))
        indices = [self._index[ch] for ch in context]
        for k, table in enumerate(self.tables):
            row = table.row(self._key(indices[len(indices) - k:] if k else []))
            if row is None:
                break  # a longer context is unseen too
            lo, hi = table.indptr[row], table.indptr[row + 1]
            counts = table.counts[lo:hi]
            total, types = counts.sum(), hi - lo
            probs *= types / (total + types)
            probs[table.chars[lo:hi]] += counts / (total + types)
        return probs

    def score(self, text: str) -> float:
        """Natural-log probability of a whole text (for tests and perplexity)."""
        return float(sum(self.log_probs(text[:i])[self._index[ch]] for i, ch in enumerate(text)))

    # --- file -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {"format": np.array(FORMAT), "alphabet": np.array(self.alphabet),
                                         "order": np.array(self.order)}
        for k, table in enumerate(self.tables):
            arrays[f"keys{k}"] = table.keys
            arrays[f"indptr{k}"] = table.indptr
            arrays[f"chars{k}"] = table.chars
            arrays[f"counts{k}"] = table.counts.astype(np.uint32)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> CharLM:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: language model not found (build it: dvc repro ocr-lm; "
                                  "seqlab predict --greedy reads without it)")
        try:
            with np.load(path) as data:
                if "format" not in data or str(data["format"]) != FORMAT:
                    raise CheckpointError(f"{path}: not a seqlab character language model")
                alphabet, order = str(data["alphabet"]), int(data["order"])
                tables = []
                for k in range(order):
                    tables.append(CountTable(data[f"keys{k}"], data[f"indptr{k}"], data[f"chars{k}"],
                                             data[f"counts{k}"].astype(np.float64)))
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise CheckpointError(f"{path}: unreadable language model ({type(exc).__name__}: {exc})") from None
        return cls(alphabet, order, tables)


def build_language_model(texts: Iterable[str], charset: Charset, order: int, out: Path) -> CharLM:
    """Count `texts` (normalised as labels; those the charset accepts) into an order-`order` model, written to `out`."""
    lm = CharLM.fit((charset.normalize(t) for t in texts), charset.chars, order)
    lm.save(out)
    return lm
