"""The font inventory: which font files OCR images may be rendered with, what each one is, and why some are not used.

Sources:
- `trdg`: the 100 Latin files trdg ships (~15 sans/display families, no serif, slab or mono face).
- Debian packages (`TRAINING_PACKAGES`): hundreds of serif, sans, slab, mono, condensed, italic and
  bold files, installed by `make fonts` (scripts/install_fonts.sh reads the package lists from here).
  Files are found through dpkg's own file lists, so a font that happens to be installed on a
  machine never enters the inventory.

Font ids: a trdg font keeps its file name ("Lato-Regular.ttf"), so params and datasets written
before the inventory keep their meaning; a Debian font is "<package>/<file name>"
("fonts-cmu/cmunrm.ttf"). `font_path` resolves either to the file.

Reserved evaluation families (seqlab.tasks.ocr.reserved_families: DejaVu and its relatives, Liberation,
Croscore, URW base35 and its derivatives, TeX Gyre, GNU FreeFont) are never used for training or
validation: they measure how well a model reads families it has never seen. Their packages
(`RESERVED_PACKAGES`) are installed for the evaluation split only (`reserved_fonts`).

A file is excluded from training, with the reason, when it is reserved, is not a text face, lacks
a visible glyph for a character that can be rendered, or (for case-sensitive charsets) draws
lowercase letters as capitals or small capitals. That last check measures glyph heights: in
every font we have with true lowercase, 'd' rises at least 25% of the cap height above 'a' or 'g'
descends that far below it; in every capital or small-capital font both gaps are at most 4% (the
check found trdg's AllerDisplay, small caps, which the hand-made list had missed).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from seqlab.core.errors import ParamsError, SeqlabError
from seqlab.core.storage import sha256_file, write_json
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.reserved_families import is_reserved, reserved_family
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

TRDG = "trdg"
DEBIAN = "debian"
SOURCES = (TRDG, DEBIAN)
CLASSES = ("serif", "sans", "slab", "mono", "display", "script")

# Debian packages whose fonts may train.
TRAINING_PACKAGES = (
    "fonts-adf-accanthis", "fonts-adf-baskervald", "fonts-adf-berenis", "fonts-adf-gillius",
    "fonts-adf-ikarius", "fonts-adf-irianis", "fonts-adf-libris", "fonts-adf-mekanus",
    "fonts-adf-oldania", "fonts-adf-romande", "fonts-adf-solothurn", "fonts-adf-switzera",
    "fonts-adf-tribun", "fonts-adf-universalis", "fonts-adf-verana", "fonts-anonymous-pro",
    "fonts-cantarell", "fonts-cmu", "fonts-comic-neue", "fonts-courier-prime",
    "fonts-crosextra-caladea", "fonts-crosextra-carlito", "fonts-ebgaramond", "fonts-firacode",
    "fonts-go", "fonts-inconsolata", "fonts-jetbrains-mono", "fonts-linuxlibertine",
    "fonts-noto-core", "fonts-noto-mono", "fonts-oldstandard", "fonts-roboto-slab", "fonts-sil-andika",
    "fonts-sil-charis", "fonts-sil-gentium", "fonts-vollkorn",
)
# Debian packages of the reserved evaluation families (rendered by the evaluation split only).
RESERVED_PACKAGES = (
    "fonts-croscore", "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-freefont-ttf",
    "fonts-liberation", "fonts-liberation2", "fonts-texgyre", "fonts-urw-base35",
)
# Not fonts, installed with them: Debian's English word list, the evaluation split's words (reserved_render).
EVALUATION_PACKAGES = ("wamerican",)

# Family (name table) prefix -> class; the longest matching prefix wins, so "Noto Sans Mono" is
# mono while "Noto Sans" is sans. Families missing here fall back to OS/2 metadata (`_metadata_class`).
FAMILY_CLASSES: dict[str, str] = {
    # trdg
    "Aller": "sans", "Amatic": "display", "Bebas": "display", "Capture it": "display",
    "Caviar Dreams": "sans", "Droid Sans": "sans", "FFF Tusj": "display", "Lato": "sans",
    "Open Sans": "sans", "Pacifico": "script", "Raleway": "sans", "Roboto": "sans",
    "Sansation": "sans", "SeasideResortNF": "display", "Walkway": "sans",
    # Debian training packages
    "Accanthis ADF": "serif", "Baskervald ADF": "serif", "Berenis ADF": "serif", "Gillius ADF": "sans",
    "Ikarius ADF": "sans", "Irianis ADF": "serif", "Libris ADF": "sans", "Mekanus ADF": "display",
    "Oldania ADF": "display", "Romande ADF": "serif", "Romande ADF Script": "script",
    "Solothurn": "display", "Switzera ADF": "sans", "Tribun ADF": "serif", "Universalis ADF": "sans",
    "Verana": "serif", "Verana Sans": "sans", "Anonymous Pro": "mono", "Cantarell": "sans",
    "CMU Bright": "sans", "CMU Classical Serif": "serif", "CMU Concrete": "serif",
    "CMU Sans Serif": "sans", "CMU Serif": "serif", "CMU Typewriter Text": "mono",
    "CMU Typewriter Text Variable Width": "slab", "Comic Neue": "display", "Courier Prime": "mono",
    "Caladea": "serif", "Carlito": "sans", "EB Garamond": "serif", "Fira Code": "mono", "Go": "sans",
    "Go Mono": "mono", "Inconsolata": "mono", "JetBrains Mono": "mono", "Linux Biolinum": "sans",
    "Linux Libertine": "serif", "Linux Libertine Initials": "display", "Linux Libertine Mono": "mono",
    "Noto Mono": "mono", "Noto Sans": "sans", "Noto Sans Mono": "mono", "Noto Serif": "serif", "Old Standard TT": "serif",
    "Roboto Slab": "slab", "Andika": "sans", "Charis SIL": "serif", "Gentium": "serif", "GentiumAlt": "serif",
    "Vollkorn": "serif",
    # reserved evaluation families
    "DejaVu Sans": "sans", "DejaVu Sans Mono": "mono", "DejaVu Serif": "serif", "DejaVu Math": "serif",
    "Liberation Sans": "sans", "Liberation Serif": "serif", "Liberation Mono": "mono", "Arimo": "sans",
    "Tinos": "serif", "Cousine": "mono", "Nimbus Sans": "sans", "Nimbus Roman": "serif",
    "Nimbus Mono": "mono", "C059": "serif", "P052": "serif", "URW Bookman": "serif",
    "URW Gothic": "sans", "Z003": "script", "D050000L": "display", "Standard Symbols": "display",
    "TeX Gyre Adventor": "sans", "TeX Gyre Bonum": "serif", "TeX Gyre Chorus": "script",
    "TeX Gyre Cursor": "mono", "TeX Gyre Heros": "sans", "TeX Gyre Pagella": "serif",
    "TeX Gyre Schola": "serif", "TeX Gyre Termes": "serif", "FreeSans": "sans", "FreeSerif": "serif",
    "FreeMono": "mono",
}

# Faces that map letters to pictures of something else (so they pass the glyph check): never
# rendered, neither for training nor for evaluation.
NOT_TEXT_FAMILIES: dict[str, str] = {
    "Linux Biolinum Keyboard O": "draws each character on a key cap",
    "D050000L": "draws dingbats, not letters",
    "Standard Symbols PS": "draws Greek and mathematical symbols, not Latin letters",
}
# fonts-noto-core's ~270 files are mostly other scripts, some with a Latin copy (Nushu, Math,
# Symbols): only its Latin text families train. Checked before the glyphs, which saves seconds.
PACKAGE_FAMILIES: dict[str, tuple[str, ...]] = {
    "fonts-noto-core": ("Noto Sans", "Noto Sans Display", "Noto Serif", "Noto Serif Display"),
}

# trdg fonts that draw lowercase as capitals (BEBAS, Capture_it, Capture_it_2, SEASRN) or small
# capitals (Amatic-Bold, AmaticSC, AllerDisplay); `draws_lowercase_as_capitals` finds them all.
CASE_UNRELIABLE_FONTS = frozenset({
    "AllerDisplay.ttf", "Amatic-Bold.ttf", "AmaticSC-Regular.ttf", "BEBAS___.ttf", "Capture_it.ttf",
    "Capture_it_2.ttf", "SEASRN__.ttf",
})
_LOWERCASE_GAP = 0.15  # share of the cap height; see the module docstring for the measured margins
_FONT_SUFFIXES = (".ttf", ".otf")


@dataclass(frozen=True)
class FontFile:
    id: str  # file name for trdg, "<package>/<file name>" for Debian
    path: Path
    source: str  # "trdg" or the Debian package
    family: str  # typographic family from the name table
    style: str  # subfamily, e.g. "regular", "bold-italic", "light", "bold-cond"
    font_class: str  # one of CLASSES

    def as_tuple(self) -> tuple[Path, str, str, str]:
        return self.path, self.family, self.style, self.font_class


# --- files -----------------------------------------------------------------------------------


def font_dir() -> Path:
    """trdg's Latin font directory."""
    return trdg_dir() / "fonts" / "latin"


def list_fonts() -> list[str]:
    """File names (= ids) of every Latin font trdg ships, sorted."""
    return sorted(p.name for p in font_dir().glob("*.[ot]tf"))


@cache
def _installed_files() -> dict[str, dict[str, Path]]:
    """package -> {file name: path} of the font files of each installed inventory package (one dpkg-query)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n${db-fsys:Files}",
             *sorted(set(TRAINING_PACKAGES + RESERVED_PACKAGES))],
            capture_output=True, text=True, check=False,
        ).stdout
    except FileNotFoundError:  # not a Debian system: no package is installed
        return {}
    files: dict[str, dict[str, Path]] = {}
    package = None
    for line in out.splitlines():
        if not line.startswith(" "):
            name, _, status = line.partition("\t")
            package = name if status.startswith("ii") else None
        elif package and line.lower().endswith(_FONT_SUFFIXES) and Path(line.strip()).is_file():
            path = Path(line.strip())
            files.setdefault(package, {})[path.name] = path
    return files


def installed_packages(packages: Iterable[str]) -> list[str]:
    """The packages of `packages` that are installed and hold at least one font file."""
    return [p for p in packages if p in _installed_files()]


def require_packages(packages: Sequence[str]) -> None:
    """Raise one SeqlabError line naming the missing font packages and how to install them."""
    missing = sorted(set(packages) - set(installed_packages(packages)))
    if missing:
        raise SeqlabError(f"font packages not installed: {' '.join(missing)} "
                          "(run `make fonts`, or `sudo scripts/install_fonts.sh`)")


def font_path(font_id: str) -> Path:
    """The file of a font id; unknown ids raise ParamsError."""
    package, sep, name = font_id.partition("/")
    if not sep:
        path = font_dir() / font_id
        if not path.is_file():
            raise ParamsError(f"unknown font {font_id!r}: not one of trdg's Latin fonts")
        return path
    files = _installed_files().get(package, {})
    if name not in files:
        raise ParamsError(f"unknown font {font_id!r}: no such file in an installed inventory package")
    return files[name]


# --- what a file is --------------------------------------------------------------------------


def family_class(family: str) -> str | None:
    """The curated class of a family: its longest prefix in FAMILY_CLASSES, or None."""
    prefixes = [p for p in FAMILY_CLASSES if family == p or family.startswith(p + " ")]
    return FAMILY_CLASSES[max(prefixes, key=len)] if prefixes else None


def _metadata_class(font: TTFont) -> str:
    """A class from the file's own metadata (fixed pitch, PANOSE, OS/2 family class)."""
    os2 = font["OS/2"] if "OS/2" in font else None
    panose = os2.panose if os2 is not None else None
    if font["post"].isFixedPitch or (panose is not None and panose.bProportion == 9):
        return "mono"
    if panose is not None and panose.bFamilyType in (3, 4):
        return "script" if panose.bFamilyType == 3 else "display"
    if panose is not None and panose.bFamilyType == 2 and panose.bSerifStyle:
        serif = panose.bSerifStyle
        return "sans" if serif >= 11 else "slab" if serif in (4, 5, 6) else "serif"
    family_class_id = (os2.sFamilyClass >> 8) if os2 is not None else 0
    return {1: "serif", 2: "serif", 3: "serif", 4: "slab", 5: "slab", 7: "serif", 8: "sans", 9: "display",
            10: "script"}.get(family_class_id, "display")  # nothing known: call it display, the catch-all


def _style_name(subfamily: str) -> str:
    """"Bold Italic" / "BoldItalic" -> "bold-italic"."""
    return "-".join(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", subfamily).lower().split()) or "regular"


def describe(path: Path, font_id: str, source: str) -> FontFile:
    """Family, style and class of one font file, read from its name, OS/2 and post tables."""
    with TTFont(path, lazy=True) as font:
        names = font["name"]
        family = names.getDebugName(16) or names.getDebugName(1) or path.stem
        style = _style_name(names.getDebugName(17) or names.getDebugName(2) or "")
        font_class = family_class(family) or _metadata_class(font)
    return FontFile(font_id, path, source, family, style, font_class)


@cache
def missing_glyphs(path: Path | str, chars: str) -> str:
    """Characters of `chars` that the font file draws as nothing or as its missing-glyph box."""
    face = ImageFont.truetype(str(path), 24, layout_engine=ImageFont.Layout.BASIC)

    def ink(text: str) -> bytes | None:
        canvas = Image.new("L", (64, 64))
        ImageDraw.Draw(canvas).text((16, 8), text, font=face, fill=255)
        return canvas.tobytes() if canvas.getbbox() else None

    notdef = ink("\uffff")  # a noncharacter: no font maps it
    return "".join(c for c in chars if (drawn := ink(c)) is None or drawn == notdef)


@cache
def draws_lowercase_as_capitals(path: Path | str) -> bool:
    """True when 'd' does not rise above 'a' and 'g' does not descend below it (capitals, small caps)."""
    face = ImageFont.truetype(str(path), 32, layout_engine=ImageFont.Layout.BASIC)

    def box(ch: str) -> tuple[int, int, int, int] | None:
        canvas = Image.new("L", (96, 96))
        ImageDraw.Draw(canvas).text((24, 16), ch, font=face, fill=255)
        return canvas.getbbox()

    a, d, g, cap = box("a"), box("d"), box("g"), box("A")
    if a is None or d is None or g is None or cap is None:
        return False  # a missing letter is the coverage check's finding
    height = max(cap[3] - cap[1], 1)
    return (a[1] - d[1]) / height < _LOWERCASE_GAP and (g[3] - a[3]) / height < _LOWERCASE_GAP


def rendered_chars(charset: Charset) -> str:
    """Characters that may be drawn for `charset`: a caseless charset's words keep their capitals."""
    if not charset.caseless:
        return charset.glyphs
    return charset.glyphs + "".join(sorted({c.upper() for c in charset.glyphs} - set(charset.glyphs)))


def font_problem(font: FontFile | str, charset: Charset) -> str | None:
    """Why `font` (a FontFile or an id) must not train on labels of `charset`, or None when it may."""
    font = font if isinstance(font, FontFile) else describe(font_path(font), font, _source_of(font))
    group = reserved_family(font.family) or reserved_family(font.id)
    if group:
        return f"is in the reserved evaluation family {group}"
    if font.family in NOT_TEXT_FAMILIES:
        return NOT_TEXT_FAMILIES[font.family]
    if font.family not in PACKAGE_FAMILIES.get(font.source, (font.family,)):
        return f"is not one of the Latin text families of {font.source}"
    if not charset.caseless and (font.id in CASE_UNRELIABLE_FONTS or draws_lowercase_as_capitals(font.path)):
        return "draws lowercase as capitals, so case-sensitive labels would be wrong"
    missing = missing_glyphs(font.path, rendered_chars(charset))
    return f"has no glyph for {missing!r}" if missing else None


def _source_of(font_id: str) -> str:
    return font_id.partition("/")[0] if "/" in font_id else TRDG


# --- the inventory ---------------------------------------------------------------------------


@cache
def _scan(packages: tuple[str, ...]) -> tuple[FontFile, ...]:
    if packages == (TRDG,):
        return tuple(describe(font_dir() / name, name, TRDG) for name in list_fonts())
    files = _installed_files()
    return tuple(
        describe(path, f"{package}/{name}", package)
        for package in packages for name, path in sorted(files.get(package, {}).items())
    )


def inventory(sources: Iterable[str] = SOURCES, reserved: bool = False) -> list[FontFile]:
    """Every font file of `sources` ("trdg", "debian"), plus the reserved packages' when `reserved`, by id."""
    fonts: list[FontFile] = []
    for source in sources:
        if source not in SOURCES:
            raise ParamsError(f"unknown font source {source!r} (choose from {', '.join(SOURCES)})")
        fonts += _scan((TRDG,)) if source == TRDG else _scan(TRAINING_PACKAGES)
    if reserved:
        fonts += _scan(RESERVED_PACKAGES)
    return sorted(fonts, key=lambda f: f.id)


def _required(sources: Iterable[str]) -> list[str]:
    return list(TRAINING_PACKAGES) if DEBIAN in sources else []


def classify(
    charset: Charset, sources: Sequence[str] = SOURCES, reserved: bool = False
) -> tuple[list[FontFile], dict[str, str]]:
    """Training fonts of `sources` for `charset`, and every excluded id with its reason.

    With `reserved`, the installed reserved packages' files are listed among the exclusions too.
    """
    require_packages(_required(sources))
    usable: list[FontFile] = []
    excluded: dict[str, str] = {}
    for font in inventory(sources, reserved):
        problem = font_problem(font, charset)
        if problem is None:
            usable.append(font)
        else:
            excluded[font.id] = problem
    return usable, excluded


def reserved_fonts(charset: Charset | None = None) -> list[tuple[Path, str, str, str]]:
    """The evaluation fonts as (path, family, style, class), by id; only those covering `charset` if given.

    Symbol faces are left out; case-unreliable ones would be too, but no reserved family has any.
    """
    require_packages(RESERVED_PACKAGES)
    fonts = [f for f in inventory((), reserved=True) if is_reserved(f.family) and f.family not in NOT_TEXT_FAMILIES]
    if charset is not None:
        fonts = [f for f in fonts if not missing_glyphs(f.path, rendered_chars(charset))]
    return [f.as_tuple() for f in fonts]


# --- params ----------------------------------------------------------------------------------


def check_font_selection(fonts: str | Sequence[str], heldout_fonts: int | Sequence[str]) -> None:
    """Raise ParamsError when ocr.data.fonts or heldout_fonts names a reserved font (by file name or family)."""
    for key, names in (("fonts", fonts), ("heldout_fonts", heldout_fonts)):
        if isinstance(names, (str, int)):
            continue  # "all" / a count: the inventory never draws reserved fonts
        for name in names:
            group = reserved_family(str(name))
            if group:
                raise ParamsError(f"ocr.data.{key}: {name!r} is in the reserved evaluation family {group}; "
                                  "reserved families are never used for training")


def usable_fonts(
    fonts: str | Sequence[str], charset: Charset, sources: Sequence[str] = (TRDG,)
) -> tuple[list[str], dict[str, str]]:
    """Font ids to render with, and the excluded ids with the reason.

    `fonts="all"` means every font of `sources` and silently drops unusable ones (they are reported
    in the stats); an explicit list of ids (any source) naming an unusable font is a params error.
    """
    if fonts == "all":
        usable, excluded = classify(charset, sources)
        return [f.id for f in usable], excluded
    check_font_selection(fonts, 0)
    names = sorted(fonts)
    problems = {f: p for f in names if (p := font_problem(f, charset)) is not None}
    if problems:
        font, why = next(iter(problems.items()))
        raise ParamsError(f"ocr.data.fonts: {font} {why} (charset {charset.name!r})")
    return names, {}


def choose_heldout_fonts(heldout: int | Sequence[str], fonts: Sequence[str], seed: int) -> list[str]:
    """The fonts kept out of train/val: `heldout` trdg fonts of `fonts` drawn from the seed, or an explicit list.

    Drawing from trdg's fonts only keeps the `test_heldout_fonts` split what it always was when
    Debian fonts join training.
    """
    from seqlab.core.seeding import derive_seed  # here, not at module level: spawned workers skip torch

    if isinstance(heldout, int):
        candidates = sorted(f for f in fonts if _source_of(f) == TRDG)
        if not 0 < heldout <= len(candidates) or heldout >= len(fonts):
            raise ParamsError(f"ocr.data.heldout_fonts must be in 1..{min(len(candidates), len(fonts) - 1)} "
                              f"for {len(candidates)} usable trdg fonts of {len(fonts)}")
        rng = np.random.default_rng(derive_seed(seed, "ocr", "heldout_fonts"))
        return sorted(str(f) for f in rng.choice(candidates, size=heldout, replace=False))
    unusable = [f for f in heldout if f not in fonts]
    if unusable:
        raise ParamsError(f"ocr.data.heldout_fonts: {unusable[0]} is not a usable font for this charset")
    if len(set(heldout)) >= len(set(fonts)):
        raise ParamsError("ocr.data.heldout_fonts must leave at least one training font")
    return sorted(set(heldout))


# --- manifest --------------------------------------------------------------------------------


def _manifest_path(font: FontFile) -> str:
    # trdg's files live in the venv, whose location differs between clones: name them from the package.
    return f"trdg/fonts/latin/{font.id}" if font.source == TRDG else str(font.path)


def manifest(charset: Charset, sources: Sequence[str] = SOURCES) -> dict[str, Any]:
    """The training fonts (with sha256) and the excluded files (with the reason) as JSON-ready data.

    With Debian sources, the reserved packages' files are listed among the excluded ones.
    """
    usable, excluded = classify(charset, sources, reserved=DEBIAN in sources)
    by_id = {f.id: f for f in inventory(sources, reserved=DEBIAN in sources)}
    return {
        "charset": charset.name,
        "sources": sorted(sources),
        "fonts": [
            {"id": f.id, "path": _manifest_path(f), "family": f.family, "style": f.style, "class": f.font_class,
             "source": f.source, "sha256": sha256_file(f.path)}
            for f in usable
        ],
        "excluded": [
            {"id": i, "path": _manifest_path(by_id[i]), "family": by_id[i].family, "style": by_id[i].style,
             "source": by_id[i].source, "reason": why}
            for i, why in sorted(excluded.items())
        ],
    }


def write_manifest(path: str | Path, charset: Charset | str, sources: Sequence[str] = SOURCES) -> dict[str, Any]:
    """Write the manifest as sorted JSON: the same installed files give the same bytes."""
    data = manifest(Charset.from_name(charset) if isinstance(charset, str) else charset, sources)
    write_json(path, data)
    return data


def summary(data: dict[str, Any]) -> str:
    """A few lines for people: training files and families by class and source, exclusions by reason."""
    fonts = data["fonts"]
    lines = [f"{len(fonts)} training font files, {len({f['family'] for f in fonts})} families"]
    for key in ("class", "source"):
        counts: dict[str, list[int]] = {}
        for value in sorted({f[key] for f in fonts}):
            chosen = [f for f in fonts if f[key] == value]
            counts[value] = [len(chosen), len({f["family"] for f in chosen})]
        lines.append(f"by {key} (files/families): " + ", ".join(f"{k} {n}/{m}" for k, (n, m) in counts.items()))
    reasons: dict[str, int] = {}
    for entry in data["excluded"]:
        reason = "has no glyph" if entry["reason"].startswith("has no glyph") else entry["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    lines.append("excluded: " + "; ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    return "\n".join(lines)
