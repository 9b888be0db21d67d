"""Words to render: dictionary words, numbers, letter-digit mixes and random strings, mixed by ratios.

Dictionary words keep their original spelling for rendering ("London"); their labels are
`charset.normalize(word)`, so a caseless charset learns to read both cases. Random strings and
numbers are drawn from the charset itself. Everything is drawn from the `numpy.random.Generator`
passed in, so the same generator state always gives the same words.

People write words lower case, Capitalized and in CAPITALS, but trdg's dictionary is 80% lower
case and random strings of a caseless charset are all lower case, so a model trained on them alone
has seen few capitals. `case_mix` recases a share of every kind of word after it is drawn.
Mixed strings ("route66", "b0ok", "10l", "a1b2c3", "21st") put digits next to the letters they
resemble (l/1/i, o/0, s/5), where a language prior cannot tell them apart and only the glyph can.
With the defaults (no recasing, mixed_ratio 0) the draws are exactly those of the earlier
three-kind source, so existing data sets regenerate byte-identically.

Each image's kind is stored with the data (seqlab.tasks.ocr.data, `kinds`): KINDS for words, LINE_KIND for a
line of joined words, so that evaluation scores dictionary words, numbers, mixes and random strings apart.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

# Order of the kinds in WordSource.sample's draw; fixed so results do not depend on dict order.
# "mixed" comes last: with mixed_ratio 0 the draw maps every uniform to the same kind as before.
KINDS = ("dictionary", "number", "random", "mixed")
LINE_KIND = "words"  # the kind of a line of words joined by spaces (sample_lines)
CASES = ("as_spelled", "capitalized", "upper")  # keys of case_mix, in draw order
MIXED_KINDS = ("confusable", "word_number", "code", "ordinal", "unit")
CONFUSABLE_DIGITS = {"o": "0", "l": "1", "i": "1", "s": "5", "z": "2"}  # letter -> the digit it resembles
UNITS = ("l", "m", "g", "s", "h", "x", "kg", "km", "ml", "cm", "mm", "mg", "am", "pm", "px", "kb", "mb", "gb",
         "hz", "kw", "mph", "fps")
MAX_NUMBER_DIGITS = 4  # in ordinals, units and word+number mixes: "1024px", not "8812946px"


def dictionary_path(lang: str = "en") -> Path:
    return trdg_dir() / "dicts" / f"{lang}.txt"


@cache
def _dictionary(path: Path, charset: Charset, min_len: int, max_len: int) -> tuple[str, ...]:
    """Unique dictionary entries (file order) of one word each whose label fits the charset and length range."""
    glyphs = set(charset.glyphs)  # no space: a multi-word entry is not a word
    fold = str.lower if charset.caseless else str
    words = dict.fromkeys(
        w
        for w in path.read_text(encoding="utf-8", errors="ignore").splitlines()
        if min_len <= len(w) <= max_len and glyphs.issuperset(fold(w))
    )
    return tuple(words)


@cache
def _letter_words_by_length(path: Path, charset: Charset, max_len: int) -> dict[int, tuple[str, ...]]:
    """Dictionary entries of letters only, by length: the word parts of mixed strings."""
    by_length: dict[int, list[str]] = {}
    for word in _dictionary(path, charset, 1, max_len):
        if word.isalpha():
            by_length.setdefault(len(word), []).append(word)
    return {length: tuple(words) for length, words in by_length.items()}


def _ordinal_suffix(number: int) -> str:
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _recase(word: str, case: str) -> str:
    if case == "capitalized":
        return word[:1].upper() + word[1:]  # the rest as spelled: "McDonald" stays, "route66" -> "Route66"
    return word.upper() if case == "upper" else word


class WordSource:
    """Draws words to render; `dictionary_ratio + number_ratio + mixed_ratio <= 1`, the rest are random strings.

    `case_mix` maps "as_spelled", "capitalized" and "upper" to shares (normalized to sum 1, missing
    keys 0); None keeps every word as spelled. `mixed_ratio` is the share of letter-digit mixes.
    """

    def __init__(
        self,
        charset: Charset,
        min_len: int,
        max_len: int,
        dictionary_ratio: float,
        number_ratio: float,
        dictionary: Path | None = None,
        case_mix: Mapping[str, float] | None = None,
        mixed_ratio: float = 0.0,
    ) -> None:
        if not 1 <= min_len <= max_len:
            raise ValueError(f"word lengths need 1 <= min_len <= max_len (got {min_len}, {max_len})")
        ratios = (dictionary_ratio, number_ratio, mixed_ratio)
        if min(ratios) < 0 or sum(ratios) > 1:
            raise ValueError(
                f"word ratios need dictionary_ratio, number_ratio, mixed_ratio >= 0 and a sum <= 1 "
                f"(got {dictionary_ratio}, {number_ratio}, {mixed_ratio})"
            )
        self.charset = charset
        self.min_len, self.max_len = min_len, max_len
        self.probs = np.array([dictionary_ratio, number_ratio, 1 - dictionary_ratio - number_ratio - mixed_ratio, mixed_ratio])
        self.words = _dictionary(dictionary or dictionary_path(), charset, min_len, max_len) if dictionary_ratio else ()
        if dictionary_ratio and not self.words:
            raise ValueError(f"no dictionary word of {min_len}-{max_len} characters fits charset {charset.name!r}")
        self.digits = "".join(c for c in string.digits if charset.accepts(c))
        if number_ratio and len(self.digits) < 10:
            raise ValueError(f"number_ratio > 0 needs all ten digits in charset {charset.name!r}")
        self.case_probs = _case_probs(case_mix, charset)
        self.letter_words: dict[int, tuple[str, ...]] = {}
        if mixed_ratio:
            if max_len < 2 or not charset.accepts(string.digits + string.ascii_lowercase):
                raise ValueError(f"mixed_ratio > 0 needs max_len >= 2 and the digits and letters a-z in charset {charset.name!r}")
            self.letter_words = _letter_words_by_length(dictionary or dictionary_path(), charset, max_len)

    def sample(self, rng: np.random.Generator, n: int) -> list[str]:
        """`n` words to render, each kind chosen by the ratios, then recased by the case mix."""
        return self.sample_with_kinds(rng, n)[0]

    def sample_with_kinds(self, rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
        """The words :meth:`sample` draws from the same generator state, and the kind of each (KINDS)."""
        kinds = rng.choice(len(KINDS), size=n, p=self.probs)
        lengths = rng.integers(self.min_len, self.max_len + 1, size=n)
        # Drawn only when some word is recased, so that without recasing the draws are the old ones.
        recased = self.case_probs[0] < 1
        cases = rng.choice(len(CASES), size=n, p=self.case_probs).tolist() if recased else [0] * n
        out = []
        for kind, length, case in zip(kinds.tolist(), lengths.tolist(), cases, strict=True):
            if KINDS[kind] == "dictionary":
                word = self.words[rng.integers(len(self.words))]
            elif KINDS[kind] == "number":
                # No leading zero, so numbers look like numbers.
                word = str(rng.integers(1, 10)) + "".join(rng.choice(list(self.digits), size=length - 1))
            elif KINDS[kind] == "mixed":
                word = self._mixed(rng, max(length, 2))
            else:
                word = "".join(rng.choice(list(self.charset.glyphs), size=length))
            out.append(_recase(word, CASES[case]))
        return out, [KINDS[k] for k in kinds.tolist()]

    def sample_lines(self, rng: np.random.Generator, n: int, min_words: int, max_words: int) -> list[str]:
        """`n` lines of `min_words`..`max_words` words (uniform), each word drawn as by :meth:`sample`."""
        if not 1 <= min_words <= max_words:
            raise ValueError(f"words per line need 1 <= min_words <= max_words (got {min_words}, {max_words})")
        per_line = rng.integers(min_words, max_words + 1, size=n)
        words = self.sample(rng, int(per_line.sum()))
        ends = np.cumsum(per_line).tolist()
        return [" ".join(words[end - k:end]) for end, k in zip(ends, per_line.tolist(), strict=True)]

    def _mixed(self, rng: np.random.Generator, length: int) -> str:
        """A `length`-character mix of letters and digits, both present, of a kind feasible at that length."""
        kinds = [k for k in MIXED_KINDS if k not in ("ordinal", "unit") or 3 <= length <= MAX_NUMBER_DIGITS + 2]
        kind = kinds[rng.integers(len(kinds))]
        if kind == "confusable":  # "b0ok", "1ist5": letters swapped for the digits they resemble
            words = self.letter_words.get(length, ())
            word = words[rng.integers(len(words))] if words else ""
            spots = [i for i, c in enumerate(word.lower()) if c in CONFUSABLE_DIGITS]
            if spots:
                swap = rng.random(len(spots)) < 0.5
                swap[rng.integers(len(spots))] = True
                if swap.sum() == len(word):  # "il" -> "11" has no letter left: keep one
                    swap[rng.integers(len(spots))] = False
                chars = list(word)
                for i in np.flatnonzero(swap).tolist():
                    chars[spots[i]] = CONFUSABLE_DIGITS[chars[spots[i]].lower()]
                return "".join(chars)
            kind = "code"  # no word of this length with a look-alike letter
        if kind == "word_number":  # "route66", "mp3", "4wd"
            digits = int(rng.integers(1, min(MAX_NUMBER_DIGITS, length - 1) + 1))
            words = self.letter_words.get(length - digits, ())
            word = words[rng.integers(len(words))] if words else self._letters(rng, length - digits)
            number = self._number(rng, digits)
            return number + word if rng.random() < 0.25 else word + number
        if kind == "ordinal":  # "21st", "3rd", "112th"
            number = self._number(rng, length - 2)
            return number + _ordinal_suffix(int(number))
        if kind == "unit":  # "10l", "250ml", "60fps"
            units = [u for u in UNITS if 1 <= length - len(u) <= MAX_NUMBER_DIGITS]
            unit = units[rng.integers(len(units))]
            return self._number(rng, length - len(unit)) + unit
        # "code": "a1b2c3", "x7k", "ab12": each character a letter or a digit, both present
        is_digit = rng.random(length) < 0.5
        if is_digit.all() or not is_digit.any():
            is_digit[rng.integers(length)] = ~is_digit[0]
        letters, numerals = self._letters(rng, length), self._number(rng, length, leading_zero=True)
        return "".join(d if is_d else c for c, d, is_d in zip(letters, numerals, is_digit.tolist(), strict=True))

    @staticmethod
    def _letters(rng: np.random.Generator, length: int) -> str:
        return "".join(rng.choice(list(string.ascii_lowercase), size=length))

    @staticmethod
    def _number(rng: np.random.Generator, length: int, leading_zero: bool = False) -> str:
        first = str(rng.integers(0 if leading_zero else 1, 10))
        return first + "".join(rng.choice(list(string.digits), size=length - 1))


def _case_probs(case_mix: Mapping[str, float] | None, charset: Charset) -> np.ndarray:
    """Draw probabilities in CASES order; a case-sensitive charset must hold the capitals it will get."""
    if case_mix is None:
        return np.array([1.0, 0.0, 0.0])
    unknown = sorted(set(case_mix) - set(CASES))
    if unknown:
        raise ValueError(f"case_mix has unknown key {unknown[0]!r} (known: {', '.join(CASES)})")
    shares = np.array([float(case_mix.get(c, 0.0)) for c in CASES])
    if shares.min() < 0 or shares.sum() <= 0:
        raise ValueError(f"case_mix shares must be >= 0 with a positive sum (got {dict(case_mix)})")
    probs = shares / shares.sum()
    if probs[0] < 1 and not charset.caseless:
        missing = [c for c in charset.chars if c.islower() and c.upper() not in charset.chars]
        if missing:
            raise ValueError(f"case_mix recases words, but charset {charset.name!r} lacks the capital of {missing[0]!r}")
    return probs
