"""The OCR font inventory: reserved families, coverage and case checks, classes, the manifest.

Tests that need Debian's font packages skip, naming them, where they are not installed (`make fonts`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fontTools import subset
from fontTools.ttLib import TTFont

from seqlab.core.errors import ParamsError, SeqlabError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.synth import fonts
from seqlab.tasks.ocr.synth.fonts import (
    CASE_UNRELIABLE_FONTS,
    CLASSES,
    FontFile,
    check_font_selection,
    choose_heldout_fonts,
    describe,
    draws_lowercase_as_capitals,
    family_class,
    font_dir,
    font_path,
    font_problem,
    is_reserved,
    list_fonts,
    missing_glyphs,
    require_packages,
    reserved_family,
    reserved_fonts,
    write_manifest,
)

DIGITS_LOWER = Charset.from_name("digits_lower")


def needs(*packages: str) -> pytest.MarkDecorator:
    missing = sorted(set(packages) - set(fonts.installed_packages(packages)))
    return pytest.mark.skipif(bool(missing), reason=f"Debian font packages not installed: {' '.join(missing)} "
                                                     "(make fonts)")


# --- reserved evaluation families --------------------------------------------------------------


@pytest.mark.parametrize(("name", "group"), [
    ("DejaVuSans.ttf", "DejaVu"), ("DejaVu Serif", "DejaVu"), ("Hack-Regular.ttf", "DejaVu"),
    ("VeraMoBd.ttf", "DejaVu"), ("Bitstream Vera Sans", "DejaVu"), ("LiberationSans-Regular.ttf", "Liberation"),
    ("Liberation Sans Narrow", "Liberation"), ("Arimo-Bold.ttf", "Croscore"), ("Tinos", "Croscore"),
    ("Cousine-Italic.ttf", "Croscore"), ("NimbusRoman-Regular.otf", "URW base35"),
    ("Nimbus Sans L", "URW base35"), ("P052-Roman.otf", "URW base35"), ("C059", "URW base35"),
    ("URW Gothic", "URW base35"), ("Z003-MediumItalic.otf", "URW base35"), ("D050000L.otf", "URW base35"),
    ("Standard Symbols PS", "URW base35"), ("Century Schoolbook L", "URW base35"),
    ("texgyretermes-regular.otf", "TeX Gyre"), ("TeX Gyre Heros Cn", "TeX Gyre"),
    ("FreeSans.ttf", "GNU FreeFont"), ("FreeMonoBold.ttf", "GNU FreeFont"),
    ("fonts-dejavu-core/DejaVuSansMono.ttf", "DejaVu"),
])
def test_reserved_families_are_refused(name: str, group: str) -> None:
    assert reserved_family(name) == group and is_reserved(name)
    with pytest.raises(ParamsError, match=rf"ocr.data.fonts: '{re.escape(name)}' is in the reserved evaluation family {group};"):
        check_font_selection(["Lato-Regular.ttf", name], 2)
    with pytest.raises(ParamsError, match="ocr.data.heldout_fonts"):
        check_font_selection("all", [name])


def test_reserved_message_names_key_font_and_family() -> None:
    with pytest.raises(ParamsError) as err:
        check_font_selection(["DejaVuSans.ttf"], 1)
    assert str(err.value) == ("ocr.data.fonts: 'DejaVuSans.ttf' is in the reserved evaluation family DejaVu; "
                              "reserved families are never used for training")


@pytest.mark.parametrize("name", [
    "Lato-Regular.ttf", "Verana-Regular.otf", "Verana Sans", "fonts-cmu/cmunrm.ttf", "Linux Libertine O",
    "Courier Prime", "Noto Sans", "Roboto Slab", "Go Mono", "Carlito", "Free Spirit",
])
def test_other_families_are_accepted(name: str) -> None:
    assert not is_reserved(name)
    check_font_selection([name], [name])


def test_no_trdg_family_is_reserved() -> None:
    inventory = fonts.inventory(["trdg"])
    assert len(inventory) == 100
    assert not [f.id for f in inventory if is_reserved(f.family) or is_reserved(f.id)]


@needs(*fonts.RESERVED_PACKAGES, *fonts.TRAINING_PACKAGES)
def test_reserved_packages_hold_only_reserved_families_and_training_packages_none() -> None:
    reserved = fonts.inventory((), reserved=True)
    assert len(reserved) > 100
    # A reserved file is recognized by its file name alone, so the params check needs no font scan.
    assert all(is_reserved(f.family) and reserved_family(f.id) == reserved_family(f.family) for f in reserved)
    training = fonts.inventory(["debian"])
    assert not [f.id for f in training if is_reserved(f.family) or is_reserved(f.id)]


@needs(*fonts.RESERVED_PACKAGES)
def test_reserved_fonts_for_evaluation() -> None:
    eval_fonts = reserved_fonts(DIGITS_LOWER)
    families = {family for _, family, _, _ in eval_fonts}
    assert {"DejaVu Sans", "Liberation Serif", "Arimo", "Tinos", "Cousine", "Nimbus Sans", "P052",
            "TeX Gyre Termes", "FreeMono"} <= families
    assert all(is_reserved(family) and path.is_file() and cls in CLASSES for path, family, _, cls in eval_fonts)
    # Symbol fonts lack Latin letters, so they are no evaluation font for a Latin charset.
    assert not families & {"D050000L", "Standard Symbols PS"}


# --- glyph coverage and case ------------------------------------------------------------------


def _subset(tmp_path: Path, source: Path, drop: str) -> Path:
    """A copy of `source` keeping printable ASCII except `drop`."""
    options = subset.Options()
    options.notdef_outline = True  # keep the missing-glyph box, as real fonts draw it
    font = TTFont(source)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in map(chr, range(33, 127)) if c not in drop])
    subsetter.subset(font)
    out = tmp_path / f"subset-{source.name}"
    font.save(out)
    return out


def test_font_lacking_a_glyph_is_excluded_with_the_reason(tmp_path: Path) -> None:
    path = _subset(tmp_path, font_dir() / "Lato-Regular.ttf", drop="qQ7")
    assert missing_glyphs(path, "aq7b") == "q7"
    font = FontFile("Lato-subset.ttf", path, "test", "Lato", "regular", "sans")
    # A caseless charset still renders capitals (labels are lowercased), so 'Q' counts too.
    assert font_problem(font, DIGITS_LOWER) == "has no glyph for '7qQ'"
    full = FontFile("Lato-Regular.ttf", font_dir() / "Lato-Regular.ttf", "trdg", "Lato", "regular", "sans")
    assert font_problem(full, DIGITS_LOWER) is None and font_problem(full, Charset.from_name("printable")) is None


def test_capitals_and_small_caps_are_detected() -> None:
    assert all(draws_lowercase_as_capitals(font_dir() / name) for name in CASE_UNRELIABLE_FONTS)
    for name in ("Lato-Regular.ttf", "Pacifico.ttf", "Raleway-Thin.ttf", "OpenSans-Italic.ttf", "Walkway_Black.ttf"):
        assert not draws_lowercase_as_capitals(font_dir() / name), name
    alnum = Charset.from_name("alnum")
    bebas = describe(font_dir() / "BEBAS___.ttf", "BEBAS___.ttf", "trdg")
    assert "capitals" in (font_problem(bebas, alnum) or "") and font_problem(bebas, DIGITS_LOWER) is None


@needs("fonts-go")
def test_small_caps_detected_in_debian_fonts() -> None:
    alnum = Charset.from_name("alnum")
    assert "capitals" in (font_problem("fonts-go/Go-Smallcaps.ttf", alnum) or "")
    assert font_problem("fonts-go/Go-Regular.ttf", alnum) is None


# --- classes and styles -----------------------------------------------------------------------


@pytest.mark.parametrize(("family", "cls"), [
    ("Lato", "sans"), ("Roboto Condensed", "sans"), ("Roboto Slab", "slab"), ("Pacifico", "script"),
    ("Noto Sans", "sans"), ("Noto Sans Mono", "mono"), ("Noto Serif Display", "serif"),
    ("CMU Typewriter Text", "mono"), ("CMU Typewriter Text Variable Width", "slab"), ("EB Garamond", "serif"),
    ("Linux Libertine O", "serif"), ("Linux Biolinum O", "sans"), ("JetBrains Mono", "mono"),
    ("Bebas", "display"), ("Romande ADF Script Std", "script"), ("Courier Prime Sans", "mono"),
    ("Gotham Unknown", None),
])
def test_curated_family_classes(family: str, cls: str | None) -> None:
    assert family_class(family) == cls


def test_trdg_files_are_described_from_their_name_tables() -> None:
    lato = describe(font_dir() / "Lato-BoldItalic.ttf", "Lato-BoldItalic.ttf", "trdg")
    assert (lato.family, lato.style, lato.font_class, lato.source) == ("Lato", "bold-italic", "sans", "trdg")
    assert {f.font_class for f in fonts.inventory(["trdg"])} <= set(CLASSES)


def test_unknown_family_falls_back_to_metadata(tmp_path: Path) -> None:
    font = TTFont(font_dir() / "Lato-Regular.ttf")
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = "Zzyzx Grotesk"
    font.save(tmp_path / "zzyzx.ttf")
    described = describe(tmp_path / "zzyzx.ttf", "zzyzx.ttf", "test")
    assert described.family == "Zzyzx Grotesk" and described.font_class == "sans"  # PANOSE: rounded sans


@needs("fonts-cmu", "fonts-jetbrains-mono")
def test_debian_files_are_described() -> None:
    cmu = describe(font_path("fonts-cmu/cmunrm.ttf"), "fonts-cmu/cmunrm.ttf", "fonts-cmu")
    assert (cmu.family, cmu.font_class) == ("CMU Serif", "serif") and cmu.path.is_absolute()
    mono = describe(font_path("fonts-jetbrains-mono/JetBrainsMono-BoldItalic.ttf"), "x", "fonts-jetbrains-mono")
    assert (mono.family, mono.style, mono.font_class) == ("JetBrains Mono", "bold-italic", "mono")


# --- ids, packages, held-out fonts ------------------------------------------------------------


def test_font_ids_resolve() -> None:
    assert font_path("Lato-Regular.ttf") == font_dir() / "Lato-Regular.ttf"
    for unknown in ("NoSuchFont.ttf", "fonts-cmu/nosuch.ttf", "fonts-not-ours/x.ttf"):
        with pytest.raises(ParamsError, match="unknown font"):
            font_path(unknown)


def test_missing_packages_are_named_with_the_fix() -> None:
    with pytest.raises(SeqlabError, match=r"not installed: fonts-does-not-exist .*make fonts"):
        require_packages(["fonts-does-not-exist"])


def test_heldout_fonts_are_drawn_from_trdg_only() -> None:
    trdg = list_fonts()
    debian = [f"fonts-cmu/cmun{i}.ttf" for i in range(30)]
    heldout = choose_heldout_fonts(10, trdg + debian, seed=7)
    assert heldout == choose_heldout_fonts(10, trdg, seed=7)  # Debian fonts do not move the split
    with pytest.raises(ParamsError, match="heldout_fonts"):
        choose_heldout_fonts(3, trdg[:2] + debian, seed=7)


# --- manifest ---------------------------------------------------------------------------------


def test_trdg_manifest_is_deterministic(tmp_path: Path) -> None:
    first = write_manifest(tmp_path / "a.json", "digits_lower", ["trdg"])
    fonts._scan.cache_clear()
    write_manifest(tmp_path / "b.json", DIGITS_LOWER, ["trdg"])
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert len(first["fonts"]) == 100 and not first["excluded"]
    entry = first["fonts"][0]
    assert set(entry) == {"id", "path", "family", "style", "class", "source", "sha256"}
    assert entry["path"].startswith("trdg/fonts/latin/")  # not the venv's location


@pytest.mark.slow  # opens every installed font file
@needs(*fonts.TRAINING_PACKAGES, *fonts.RESERVED_PACKAGES)
def test_full_manifest(tmp_path: Path) -> None:
    data = write_manifest(tmp_path / "a.json", "digits_lower")
    fonts._scan.cache_clear()
    fonts._installed_files.cache_clear()
    write_manifest(tmp_path / "b.json", "digits_lower")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == data

    used = data["fonts"]
    ids = [f["id"] for f in used]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and len(used) > 300
    assert not [f["id"] for f in used if is_reserved(f["family"]) or is_reserved(f["id"])]
    assert {f["class"] for f in used} == set(CLASSES)
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in used)
    reasons = {e["id"]: e["reason"] for e in data["excluded"]}
    assert reasons["fonts-dejavu-core/DejaVuSans.ttf"] == "is in the reserved evaluation family DejaVu"
    assert reasons["fonts-linuxlibertine/LinLibertine_I.otf"].startswith("has no glyph")
    assert "fonts-noto-core/NotoSansThai-Regular.ttf" in reasons and "fonts-noto-core/NotoSans-Regular.ttf" in ids
