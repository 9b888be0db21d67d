"""Explicit, ordered character sets for CTC labels.

Class index 0 is the CTC blank; character i of a charset has class index i + 1, so a model
needs `num_classes = len(chars) + 1` outputs. Caseless charsets lowercase text before
filtering or encoding (the label of "Hello" is "hello").

The default, ``english``, is printed English: digits, a-z, A-Z, the punctuation of ordinary prose
(ENGLISH_PUNCTUATION) and the space, 77 characters in this order, so class 1-10 are ``0``-``9``, 11-36
``a``-``z``, 37-62 ``A``-``Z``, 63-76 ``, . ; : - ' " ( ) / % & ? !`` in that order and 77 the space.
The space is a character like any other, so one model reads a word or a line of words. Every named
charset ends with it: its class index is ``len(chars)`` (37 in digits_lower, 77 in english). Labels are normalised
to single spaces between words and none at either end ("  two   words " -> "two words").
"""

from __future__ import annotations

import string
from collections.abc import Iterable

BLANK = 0
SPACE = " "

# The punctuation of ordinary prose, in class order: what documents print besides letters and digits.
ENGLISH_PUNCTUATION = ",.;:-'\"()/%&?!"

# name -> (chars in class order, caseless); the space is last, so the other indices are those of before.
NAMED_CHARSETS: dict[str, tuple[str, bool]] = {
    "english": (string.digits + string.ascii_lowercase + string.ascii_uppercase + ENGLISH_PUNCTUATION + SPACE, False),
    "digits_lower": (string.digits + string.ascii_lowercase + SPACE, True),
    "alnum": (string.digits + string.ascii_letters + SPACE, False),
    "printable": (string.digits + string.ascii_letters + string.punctuation + SPACE, False),
}
DEFAULT_CHARSET = "english"


class Charset:
    """An ordered set of label characters; explicit strings are case-sensitive."""

    def __init__(self, name: str, chars: str, caseless: bool = False) -> None:
        if not chars:
            raise ValueError(f"charset {name!r} is empty")
        seen: set[str] = set()
        for ch in chars:
            if ch.isspace() and ch != SPACE:
                raise ValueError(f"charset {name!r} contains whitespace {ch!r} (the space is the only one allowed)")
            if ch in seen:
                raise ValueError(f"charset {name!r} contains {ch!r} twice")
            if caseless and ch != ch.lower():
                raise ValueError(f"caseless charset {name!r} contains upper-case {ch!r}")
            seen.add(ch)
        self.name = name
        self.chars = chars
        self.caseless = caseless
        self._index = {ch: i + 1 for i, ch in enumerate(chars)}

    @classmethod
    def from_name(cls, name_or_chars: str = DEFAULT_CHARSET) -> Charset:
        """A named charset (english, digits_lower, alnum, printable) or an explicit string of characters.

        An explicit string equal to a named set's characters is that set (with its case folding),
        so a charset saved as its characters loads back with the same behaviour.
        """
        for name, (chars, caseless) in NAMED_CHARSETS.items():
            if name_or_chars in (name, chars):
                return cls(name, chars, caseless)
        return cls(name_or_chars, name_or_chars)

    @property
    def num_classes(self) -> int:
        return len(self.chars) + 1

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Charset) and (self.chars, self.caseless) == (other.chars, other.caseless)

    def __hash__(self) -> int:
        return hash((self.chars, self.caseless))

    def __repr__(self) -> str:
        return f"Charset({self.name!r}, {len(self.chars)} chars, caseless={self.caseless})"

    @property
    def has_space(self) -> bool:
        return SPACE in self._index

    @property
    def glyphs(self) -> str:
        """The characters that draw ink: all but the space."""
        return self.chars.replace(SPACE, "")

    def normalize(self, text: str) -> str:
        """The label form of `text`: single spaces between words, none at the ends; lowercased when caseless."""
        text = SPACE.join(text.split())
        return text.lower() if self.caseless else text

    def accepts(self, text: str) -> bool:
        """True when every character of the normalized text is in the charset."""
        return all(ch in self._index for ch in self.normalize(text))

    def encode(self, text: str) -> list[int]:
        """Class indices (1..len) of the normalized text; unknown characters raise ValueError."""
        try:
            return [self._index[ch] for ch in self.normalize(text)]
        except KeyError as exc:
            raise ValueError(f"{text!r}: character {exc.args[0]!r} is not in charset {self.name!r}") from None

    def missing(self, texts: Iterable[str]) -> str:
        """The characters of `texts` (normalized) that the charset lacks, each once, in code-point order."""
        return "".join(sorted({ch for text in texts for ch in self.normalize(text) if ch not in self._index}))

    def extended(self, chars: str) -> Charset:
        """This charset with `chars` appended: every old character keeps its class index, the new ones follow.
        Saved as its characters, it loads back (from_name) as an explicit, case-sensitive charset."""
        added = "".join(ch for ch in dict.fromkeys(chars) if ch not in self._index)
        return self if not added else Charset(self.chars + added, self.chars + added, self.caseless)

    def decode(self, indices: Iterable[int]) -> str:
        """Text of class indices; blanks (0) are skipped, so collapsed CTC paths decode directly."""
        out = []
        for i in indices:
            i = int(i)
            if i == BLANK:
                continue
            if not 0 < i <= len(self.chars):
                raise ValueError(f"class index {i} is outside charset {self.name!r} (1..{len(self.chars)})")
            out.append(self.chars[i - 1])
        return "".join(out)
