"""The Pillow-rendered evaluation splits: determinism, shape, tight crops, degradations, scans, fonts, words."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.normalize import prepare_image
from seqlab.tasks.ocr.synth.reserved_render import (
    DEBIAN_WORDS,
    ScanLook,
    render_reserved_split,
    render_scan_split,
    reserved_word_source,
)
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

# The module takes any font files; trdg's ship with the venv, so these tests need no system fonts.
FONTS = [trdg_dir() / "fonts" / "latin" / name for name in ("Lato-Regular.ttf", "Roboto-Bold.ttf", "OpenSans-Italic.ttf")]
WORDS = ["Hello", "l1ttle", "WORLD", "route66", "21st", "jiffy", "Quaff", "o0O", "a1b2c3", "typography", "x", "Mm"]


@pytest.fixture(scope="module")
def clean() -> tuple[list[np.ndarray], list[str]]:
    return render_reserved_split(WORDS, FONTS, seed=3, height=32)


@pytest.fixture(scope="module")
def degraded() -> tuple[list[np.ndarray], list[str]]:
    return render_reserved_split(WORDS, FONTS, seed=3, height=32, degraded=True)


@pytest.mark.parametrize("height", [32, 48])
def test_images_are_uint8_gray_of_the_height_and_width_follows_the_word(height: int) -> None:
    images, fonts = render_reserved_split(["i", "ii", "typography"], FONTS[:1], seed=0, height=height)
    assert len(images) == len(fonts) == 3
    assert all(im.dtype == np.uint8 and im.ndim == 2 and im.shape[0] == height for im in images)
    assert images[0].shape[1] < images[1].shape[1] < images[2].shape[1]


def test_same_inputs_give_identical_bytes_whatever_the_workers(clean, degraded) -> None:
    again, fonts = render_reserved_split(WORDS, FONTS, seed=3, height=32, degraded=True, workers=2)
    assert fonts == degraded[1]
    assert [im.tobytes() for im in again] == [im.tobytes() for im in degraded[0]]
    # Image i depends on (seed, i), not on how many words follow it.
    prefix, _ = render_reserved_split(WORDS[:4], FONTS, seed=3, height=32)
    assert [im.tobytes() for im in prefix] == [im.tobytes() for im in clean[0][:4]]
    other, _ = render_reserved_split(WORDS, FONTS, seed=4, height=32)
    assert [im.tobytes() for im in other] != [im.tobytes() for im in clean[0]]


def test_clean_images_are_black_on_white_cropped_to_the_ink(clean) -> None:
    for image in clean[0]:
        ink = image < 255
        cols, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
        margins = (cols[0], image.shape[1] - 1 - cols[-1], rows[0], image.shape[0] - 1 - rows[-1])
        assert all(1 <= m <= 2 for m in margins), margins  # 1-2 white px, then ink
        assert image.min() < 60  # solid black strokes, not a faint grey


def test_degraded_keeps_words_and_fonts_but_changes_the_pixels(clean, degraded) -> None:
    assert degraded[1] == clean[1]
    assert sum(d.shape != c.shape or not np.array_equal(d, c) for d, c in zip(degraded[0], clean[0])) == len(WORDS)
    assert np.mean([np.median(im) < 250 for im in degraded[0]]) > 0.5  # paper is rarely pure white
    assert all(im.dtype == np.uint8 and im.shape[0] == 32 for im in degraded[0])


def test_only_the_fonts_passed_in_are_used() -> None:
    words = [f"w{i}" for i in range(30)]
    _, fonts = render_reserved_split(words, FONTS[1:], seed=0)
    assert set(fonts) == {p.name for p in FONTS[1:]}
    _, named = render_reserved_split(words, FONTS[1:], seed=0, font_names=["pkg/bold", "pkg/italic"])
    assert named == [{FONTS[1].name: "pkg/bold", FONTS[2].name: "pkg/italic"}[f] for f in fonts]
    with pytest.raises(ValueError, match="1 font names for 2 font files"):
        render_reserved_split(words, FONTS[1:], seed=0, font_names=["pkg/bold"])


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one font"):
        render_reserved_split(["a"], [], seed=0)
    with pytest.raises(ValueError, match="no glyph for '#'"):  # SEASRN has no '#': a label would lie
        render_reserved_split(["a#b"], [trdg_dir() / "fonts" / "latin" / "SEASRN__.ttf"], seed=0)
    for text in ("two  words", " lead", "trail "):  # lines are words joined by single spaces
        with pytest.raises(ValueError, match="single spaces"):
            render_reserved_split([text], FONTS, seed=0)


def test_reserved_words_mix_kinds_and_cases(tmp_path: Path) -> None:
    dictionary = tmp_path / "words"
    dictionary.write_text("apple\nLondon\nbook\nmilk\nsilo\ndon't\nzebra\nlittle\n")
    cs = Charset.from_name("digits_lower")
    words = reserved_word_source(cs, dictionary=dictionary).sample(np.random.default_rng(0), 600)
    assert words == reserved_word_source(cs, dictionary=dictionary).sample(np.random.default_rng(0), 600)
    assert all(cs.accepts(w) and 2 <= len(w) <= 12 for w in words)
    plain = {w.lower() for w in words if w.isalpha()}
    assert plain <= {"apple", "london", "book", "milk", "silo", "zebra", "little"}  # no random strings
    assert any(w.isupper() for w in words) and any(w[0].isupper() and w[1:].islower() for w in words)
    assert any(w.isdigit() for w in words)
    assert any(re.search("[a-z]", w, re.I) and re.search("[0-9]", w) for w in words)


@pytest.mark.skipif(not DEBIAN_WORDS.is_file(), reason="Debian's wamerican word list is not installed")
def test_reserved_words_come_from_the_debian_list() -> None:
    cs = Charset.from_name("digits_lower")
    source = reserved_word_source(cs, dictionary_ratio=1, number_ratio=0, mixed_ratio=0, case_mix={"as_spelled": 1})
    words = source.sample(np.random.default_rng(1), 300)
    debian = set(DEBIAN_WORDS.read_text(encoding="utf-8", errors="ignore").split())
    assert all(w in debian for w in words)


# --- the scan-like lines (test_reserved_scans) --------------------------------------------------------

LINES = ["THE QUICK BROWN FOX, (1923-1987).", "jumps over 42 lazy dogs", "Hello world again", "SMITH, JOHN 1234 (A-B).",
         "mix of words here", "route66 21st typography", "ONE TWO THREE FOUR FIVE", "a b c"] * 3


@pytest.fixture(scope="module")
def scans() -> tuple[list[np.ndarray], list[str]]:
    return render_scan_split(LINES, FONTS, seed=5)


def test_scans_are_binary_lines_of_native_heights(scans) -> None:
    images, fonts = scans
    assert len(images) == len(fonts) == len(LINES)
    heights = [im.shape[0] for im in images]
    assert all(25 <= h <= 60 for h in heights) and max(heights) - min(heights) >= 15  # heights vary in range
    assert all(im.dtype == np.uint8 and set(np.unique(im).tolist()) <= {0, 255} for im in images)
    for image, text in zip(images, LINES):  # the text's own ink never touches the left or right edge
        assert not (image[:, 0] == 0).all() and (image == 0).mean() < 0.4
        assert image.shape[1] > 3 * image.shape[0] * len(text) / 40


def test_scans_are_deterministic_per_seed_and_independent_of_the_workers(scans) -> None:
    again, fonts = render_scan_split(LINES, FONTS, seed=5, workers=2)
    assert fonts == scans[1] and [im.tobytes() for im in again] == [im.tobytes() for im in scans[0]]
    prefix, _ = render_scan_split(LINES[:5], FONTS, seed=5)
    assert [im.tobytes() for im in prefix] == [im.tobytes() for im in scans[0][:5]]
    other, _ = render_scan_split(LINES, FONTS, seed=6)
    assert [im.tobytes() for im in other] != [im.tobytes() for im in scans[0]]


def test_scan_look_draws_fragments_skew_and_specks_as_asked() -> None:
    plain = ScanLook(fragment=0.0, curl=0.0, blur=0.0, broken=0.0, speckle=0.0, max_angle=0.0, margin=(0.3, 0.3))
    images, _ = render_scan_split(LINES[:8], FONTS, seed=1, look=plain)
    assert not any((im[[0, -1]] == 0).any() for im in images)  # clean margins: nothing at the top or bottom edge
    edged, _ = render_scan_split(LINES[:8], FONTS, seed=1, look=ScanLook(fragment=1.0))
    assert all((im[0] == 0).any() and (im[-1] == 0).any() for im in edged)  # neighbours' fragments at both edges
    # The normaliser cuts the fragments away: what the model reads has no ink on its first and last rows.
    assert sum((prepare_image(im, 32)[[0, -1]] < 128).mean() > 0.01 for im in edged) <= 1
    specked, _ = render_scan_split(LINES[:8], FONTS, seed=1, look=dataclasses.replace(plain, speckle=1.0))
    assert sum((s == 0).sum() > (p == 0).sum() for s, p in zip(specked, images)) >= 6
