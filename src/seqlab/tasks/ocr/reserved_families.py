"""The font families reserved for evaluation: DejaVu and its relatives, Liberation, Croscore, URW base35
and its derivatives, TeX Gyre, GNU FreeFont. They never train or validate a model; the test splits
drawn in them (seqlab.tasks.ocr.synth.reserved_render) measure how well it reads families it has never seen.

A module of its own, standard library only, because params validation (seqlab.tasks.ocr.config) refuses
reserved fonts in `ocr.data.fonts`: every stage validates params, and none of them should import (or
list as a DVC dep) the font inventory (seqlab.tasks.ocr.synth.fonts: fontTools, Pillow, numpy).
"""

from __future__ import annotations

import re

# Reserved group -> regex matched at the start of a normalized family or file name (lowercase,
# letters and digits only: "DejaVu Sans Mono" -> "dejavusansmono", "Hack-Regular.ttf" -> "hackregular").
RESERVED_FAMILY_PATTERNS: dict[str, str] = {
    # Hack and Menlo derive from DejaVu, which derives from Bitstream Vera (Vera.ttf, VeraBd.ttf...).
    "DejaVu": r"dejavu|bitstreamvera|vera(bd|bi|it|mobd|mobi|moit|mono|se|sebd)?$|hack|menlo",
    "Liberation": r"liberation",
    "Croscore": r"arimo|tinos|cousine",
    # base35 (Nimbus, C059, P052, URW Bookman/Gothic, Z003, D050000L, Standard Symbols) and the
    # older gsfonts names (Nimbus ... L, URW Palladio/Chancery L, Century Schoolbook L, Dingbats).
    "URW base35": r"nimbus|urw|c059|p052|z003|d050000l|standardsymbols|centuryschoolbookl|dingbats",
    "TeX Gyre": r"texgyre",
    "GNU FreeFont": r"free(sans|serif|mono)",
}
_RESERVED = {group: re.compile(pattern) for group, pattern in RESERVED_FAMILY_PATTERNS.items()}
_FONT_SUFFIXES = (".ttf", ".otf")


def reserved_family(name: str) -> str | None:
    """The reserved evaluation group ("DejaVu", "URW base35"...) a family or font file name belongs to.

    A font id's package ("fonts-croscore/Arimo-Regular.ttf") is ignored: the file name decides.
    """
    stem = name.rsplit("/", 1)[-1]
    if stem.lower().endswith(_FONT_SUFFIXES):
        stem = stem[:-4]
    key = re.sub(r"[^a-z0-9]", "", stem.lower())
    return next((group for group, pattern in _RESERVED.items() if pattern.match(key)), None)


def is_reserved(family: str) -> bool:
    """True for a family (or file name) kept for evaluation only."""
    return reserved_family(family) is not None
