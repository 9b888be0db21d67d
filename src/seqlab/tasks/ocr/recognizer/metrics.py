"""Text recognition metrics: CER, word accuracy and normalized edit distance via rapidfuzz, word error rate
(for lines) via jiwer.

All functions take parallel sequences of predicted and ground-truth strings and return plain Python
floats/ints so the results can be written straight into a metrics JSON. Over zero samples every rate
is 0.0; check ``count`` in :func:`summarize` to tell "empty" from "perfect".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer
import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

_NOT_ALNUM = re.compile(r"[^0-9a-z ]")


def alnum_nocase(text: str) -> str:
    """The text as case-insensitive alphanumerics with single spaces: "Hello, (World)!" -> "hello world".

    The terms the figures before the case-sensitive charset were in, and those most OCR comparisons use.
    """
    return " ".join(_NOT_ALNUM.sub("", text.lower()).split())


def _check(preds: Sequence[str], truths: Sequence[str]) -> None:
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions but {len(truths)} ground truths")


def _distances(preds: Sequence[str], truths: Sequence[str]) -> np.ndarray:
    """Pairwise (not all-pairs) Levenshtein distances, computed in C."""
    if not preds:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(process.cpdist(preds, truths, scorer=Levenshtein.distance, workers=1), dtype=np.int64)


def _cer(dists: np.ndarray, truths: Sequence[str]) -> float:
    # Corpus CER: a long word counts more than a short one. If every truth is empty, divide by 1 so
    # spurious characters still show up as errors instead of a division by zero.
    total = sum(len(t) for t in truths)
    return float(dists.sum()) / max(total, 1) if len(truths) else 0.0


def cer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Corpus character error rate: sum of edit distances / sum of truth lengths."""
    _check(preds, truths)
    return _cer(_distances(preds, truths), truths)


def wer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Corpus word error rate: word-level edit distance (substitutions + deletions + insertions) / truth words.

    Words are the whitespace-separated tokens; on single-word images WER is 1 - word accuracy whenever
    the model outputs one word.
    """
    _check(preds, truths)
    if not truths:
        return 0.0
    return float(jiwer.wer(list(truths), list(preds)))


def word_accuracy(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Fraction of samples whose prediction equals the truth exactly."""
    _check(preds, truths)
    if not truths:
        return 0.0
    return sum(p == t for p, t in zip(preds, truths, strict=True)) / len(truths)


def mean_ned_similarity(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Mean of 1 - NED, NED = distance / max(len(pred), len(truth)); empty vs. empty scores 1."""
    _check(preds, truths)
    if not truths:
        return 0.0
    sims = process.cpdist(preds, truths, scorer=Levenshtein.normalized_similarity, workers=1)
    return float(np.mean(sims))


def by_length(preds: Sequence[str], truths: Sequence[str]) -> dict[int, dict[str, float | int]]:
    """Metrics grouped by truth length: {length: {"count", "cer", "word_accuracy"}}, sorted by length."""
    _check(preds, truths)
    dists = _distances(preds, truths)
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(truths):
        groups.setdefault(len(t), []).append(i)
    out: dict[int, dict[str, float | int]] = {}
    for length in sorted(groups):
        idx = groups[length]
        sub_truths = [truths[i] for i in idx]
        out[length] = {
            "count": len(idx),
            "cer": _cer(dists[idx], sub_truths),
            "word_accuracy": sum(preds[i] == truths[i] for i in idx) / len(idx),
        }
    return out


def by_words(preds: Sequence[str], truths: Sequence[str]) -> dict[int, dict[str, float | int]]:
    """Line metrics grouped by the truth's number of words: {words: {"count", "cer", "wer", "line_accuracy"}}."""
    _check(preds, truths)
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(truths):
        groups.setdefault(len(t.split()), []).append(i)
    out: dict[int, dict[str, float | int]] = {}
    for words in sorted(groups):
        sub_preds, sub_truths = [preds[i] for i in groups[words]], [truths[i] for i in groups[words]]
        out[words] = {"count": len(sub_truths), "cer": cer(sub_preds, sub_truths), "wer": wer(sub_preds, sub_truths),
                      "line_accuracy": word_accuracy(sub_preds, sub_truths)}
    return out


def summarize(preds: Sequence[str], truths: Sequence[str]) -> dict:
    """All metrics in one JSON-ready dict.

    Keys: count, cer (case-sensitive, every character of the charset), cer_nocase (case-insensitive CER),
    cer_alnum_nocase (case-insensitive CER on letters, digits and single spaces: :func:`alnum_nocase`), wer (word error rate), word_accuracy (share of images read exactly: whole words or whole
    lines), mean_ned_similarity, by_length ({"<len>": {count, cer, word_accuracy}},
    string keys because JSON object keys are strings).
    """
    _check(preds, truths)
    lower_p = [p.lower() for p in preds]
    lower_t = [t.lower() for t in truths]
    return {
        "count": len(truths),
        "cer": cer(preds, truths),
        "cer_nocase": cer(lower_p, lower_t),
        "cer_alnum_nocase": cer([alnum_nocase(p) for p in preds], [alnum_nocase(t) for t in truths]),
        "wer": wer(preds, truths),
        "word_accuracy": word_accuracy(preds, truths),
        "mean_ned_similarity": mean_ned_similarity(preds, truths),
        "by_length": {str(k): v for k, v in by_length(preds, truths).items()},
    }
