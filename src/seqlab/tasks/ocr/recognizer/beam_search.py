"""CTC prefix beam search with a character language model (Hannun et al., 2014, "First-pass LVCSR").

Greedy decoding takes the best class of every frame; a prefix beam search keeps the `beam_width` best
label prefixes, each with the probability of all frame paths that collapse to it (ending in a blank or
not), so a character smeared over several frames with a blank spike inside is one character, not two.
A prefix's score adds the language model's log-probability, times `lm_weight`, and `length_bonus` per
character (the language model alone would prefer shorter texts).

With `lm_gate` set, a text whose greedy reading the language model finds improbable (mean log-probability
per character below the gate: random strings, codes, serial numbers) keeps its greedy reading: there the
model can only pull the reading towards the language it knows.

Frames are pruned to the classes whose probability is at least `min_prob` (the best class always stays):
on a trained model most frames are all blank, and such a frame only moves probability mass between a
prefix's two endings.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.recognizer.char_lm import CharLM

NEG_INF = -math.inf


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def _collapse(best: np.ndarray) -> list[int]:
    """Greedy CTC: the frames' best classes with repeats merged and blanks dropped."""
    return [int(c) for i, c in enumerate(best.tolist()) if c and (i == 0 or c != best[i - 1])]


@dataclass(frozen=True)
class BeamSettings:
    beam_width: int = 4
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    min_prob: float = 1e-3
    lm_gate: float | None = None  # mean LM log-probability per character of the greedy reading; below: no LM


class BeamSearchDecoder:
    """Decodes (T, B, C) CTC log-probabilities like `greedy_decode`, with a beam and an optional language model."""

    def __init__(self, charset: Charset, settings: BeamSettings, lm: CharLM | None = None) -> None:
        if settings.beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {settings.beam_width}")
        self.charset, self.settings, self.lm = charset, settings, lm
        self._log_min = math.log(settings.min_prob)
        self._lm_index: list[int | None] = []  # class -> the language model's alphabet index
        if lm is not None:
            lookup = {ch: i for i, ch in enumerate(lm.alphabet)}
            self._lm_index = [None, *(lookup.get(ch) for ch in charset.chars)]
            self._floor = math.log(1.0 / len(lm.alphabet))  # a class the model's alphabet lacks

    def __call__(self, log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (T, B, C), got shape {tuple(log_probs.shape)}")
        scores = torch.log_softmax(log_probs.detach().float().cpu(), dim=2).numpy()
        limits = lengths.detach().to("cpu", torch.long).clamp(0, scores.shape[0]).tolist()
        return [self.decode(scores[:limits[b], b]) for b in range(scores.shape[1])]

    def decode(self, frames: np.ndarray) -> list[int]:
        """Class indices of one sample's best prefix; frames is (T, C) log-probabilities."""
        if self.lm is not None and self.settings.lm_weight and self.settings.lm_gate is not None:
            greedy = _collapse(frames.argmax(axis=1))
            if self._mean_lm(greedy) < self.settings.lm_gate:
                return greedy  # a text without language: the optics alone (a beam without the LM reads it worse)
        return self._search(frames, self.settings.lm_weight if self.lm is not None else 0.0)

    def greedy_lm_score(self, frames: np.ndarray) -> float:
        """The language model's mean log-probability per character of the greedy reading (0 when empty)."""
        return self._mean_lm(_collapse(frames.argmax(axis=1)))

    def _mean_lm(self, classes: list[int]) -> float:
        if not classes or self.lm is None:
            return 0.0
        total, context, keep = 0.0, "", self.lm.order - 1
        for c in classes:
            index = self._lm_index[c]
            total += self._floor if index is None else float(self.lm.log_probs(context)[index])
            context = (context + self.charset.chars[c - 1])[-keep:] if keep else ""
        return total / len(classes)

    def _search(self, frames: np.ndarray, lm_weight: float) -> list[int]:
        s = self.settings
        # A frame where only the blank passes the pruning, after another such frame, adds its blank
        # log-probability to every beam alike (all mass already ends in a blank): it cannot change the ranking.
        plausible = frames >= self._log_min
        only_blank = ~plausible[:, 1:].any(axis=1) & (frames.argmax(axis=1) == 0)
        skip = only_blank & np.r_[False, only_blank[:-1]]
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix -> (ends in blank, not)
        lm_scores: dict[tuple[int, ...], float] = {(): 0.0}  # prefix -> its language model log-probability
        contexts: dict[tuple[int, ...], str] = {(): ""}  # prefix -> its last order-1 characters
        for row, candidates in zip(frames[~skip].tolist(), plausible[~skip], strict=True):
            extend = [c for c in np.flatnonzero(candidates).tolist() if c]
            best = max(range(len(row)), key=row.__getitem__)
            if best and best not in extend:
                extend.append(best)
            blank = row[0]
            nxt: dict[tuple[int, ...], list[float]] = {}
            for prefix, (p_blank, p_char) in beams.items():
                total = _logadd(p_blank, p_char)
                here = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
                here[0] = _logadd(here[0], total + blank)
                last = prefix[-1] if prefix else None
                if last is not None and row[last] >= self._log_min:
                    here[1] = _logadd(here[1], p_char + row[last])  # the same character, still going on
                for c in extend:
                    longer = prefix + (c,)
                    entry = nxt.setdefault(longer, [NEG_INF, NEG_INF])
                    # a repeat of the last character needs a blank in between; anything else follows either ending
                    entry[1] = _logadd(entry[1], (p_blank if c == last else total) + row[c])
                    if longer not in lm_scores:
                        self._extend_lm(prefix, longer, c, lm_scores, contexts, lm_weight)
            ranked = heapq.nlargest(s.beam_width, nxt.items(), key=lambda item: _logadd(*item[1])
                                    + s.length_bonus * len(item[0]) + lm_weight * lm_scores[item[0]])
            beams = {prefix: (ends[0], ends[1]) for prefix, ends in ranked}
        best_prefix = max(beams, key=lambda prefix: _logadd(*beams[prefix]) + s.length_bonus * len(prefix)
                          + lm_weight * lm_scores[prefix])
        return list(best_prefix)

    def _extend_lm(self, prefix: tuple[int, ...], longer: tuple[int, ...], cls: int,
                   lm_scores: dict[tuple[int, ...], float], contexts: dict[tuple[int, ...], str],
                   lm_weight: float) -> None:
        if self.lm is None or not lm_weight:
            lm_scores[longer] = 0.0
            return
        context, index = contexts[prefix], self._lm_index[cls]
        step = self._floor if index is None else float(self.lm.log_probs(context)[index])
        lm_scores[longer] = lm_scores[prefix] + step
        keep = self.lm.order - 1
        contexts[longer] = (context + self.charset.chars[cls - 1])[-keep:] if keep else ""
