"""Charset, word source and trdg rendering for the OCR task (tiny counts: seconds each)."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from seqlab.errors import ParamsError
from seqlab.storage import load_arrays
from seqlab.tasks.ocr import render
from seqlab.tasks.ocr.charset import BLANK, Charset
from seqlab.tasks.ocr.render import (
    SPLITS,
    ImageSpec,
    RenderConfig,
    RenderError,
    generate,
    list_fonts,
    missing_glyphs,
    render_images,
    usable_fonts,
)
from seqlab.tasks.ocr.trdg_compat import import_trdg, patch_pillow
from seqlab.tasks.ocr.words import WordSource

FONTS = ["Lato-Regular.ttf", "OpenSans-Italic.ttf", "Pacifico.ttf", "Roboto-Bold.ttf", "BEBAS___.ttf", "Raleway-Thin.ttf"]
PARAMS = {
    "height": 32,
    "charset": "digits_lower",
    "counts": {"train": 12, "val": 3, "test": 3, "test_heldout_fonts": 3},
    "heldout_fonts": 2,
    "fonts": FONTS,
    "words": {"min_len": 2, "max_len": 12, "dictionary_ratio": 0.6, "number_ratio": 0.2},
    "skew_angle": 2,
    "blur": 1,
    "distortion_ratio": 0.3,
    "background_weights": {"noise": 0.3, "plain": 0.3, "quasicrystal": 0.1, "image": 0.3},
    "text_colors": ["#000000", "#555555"],
    "workers": 1,
}


# --- charset ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "caseless"), [("digits_lower", 36, True), ("alnum", 62, False), ("printable", 94, False)])
def test_named_charsets(name: str, size: int, caseless: bool) -> None:
    cs = Charset.from_name(name)
    assert (len(cs), cs.num_classes, cs.caseless) == (size, size + 1, caseless)
    assert BLANK == 0 and cs.encode(cs.chars[0]) == [1]
    assert not any(c.isspace() for c in cs.chars)


def test_encode_decode_roundtrip_and_blank() -> None:
    cs = Charset.from_name("alnum")
    ids = cs.encode("Hello42")
    assert min(ids) >= 1 and cs.decode(ids) == "Hello42"
    assert cs.decode([0, *ids, 0]) == "Hello42"  # blanks are skipped
    with pytest.raises(ValueError, match="outside"):
        cs.decode([cs.num_classes])
    with pytest.raises(ValueError, match="'!'"):
        cs.encode("hi!")


def test_case_folding_and_filtering() -> None:
    lower, alnum = Charset.from_name("digits_lower"), Charset.from_name("alnum")
    assert lower.normalize("London7") == "london7" and lower.encode("ABC") == lower.encode("abc")
    assert lower.accepts("London") and not lower.accepts("don't")
    assert alnum.normalize("London") == "London" and alnum.encode("A") != alnum.encode("a")
    explicit = Charset.from_name("abc")
    assert not explicit.caseless and explicit.accepts("cab") and not explicit.accepts("ABC")
    # A charset saved as its characters (e.g. in meta.json) loads back with its case folding.
    assert Charset.from_name(lower.chars) == lower and Charset.from_name(lower.chars).caseless


@pytest.mark.parametrize(("chars", "bad"), [("abca", "'a'"), ("ab c", "' '"), ("ab\tc", "'\\\\t'")])
def test_invalid_charset_names_the_character(chars: str, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        Charset.from_name(chars)


# --- words -----------------------------------------------------------------------------------


def test_words_fit_charset_and_length_and_are_deterministic() -> None:
    cs = Charset.from_name("digits_lower")
    source = WordSource(cs, min_len=3, max_len=6, dictionary_ratio=0.5, number_ratio=0.25)
    words = source.sample(np.random.default_rng(7), 400)
    assert words == source.sample(np.random.default_rng(7), 400)
    assert all(cs.accepts(w) and 3 <= len(cs.normalize(w)) <= 6 for w in words)
    assert all(cs.accepts(w) and 3 <= len(w) <= 6 for w in source.words)
    numbers = [w for w in words if w.isdigit()]
    assert numbers and all(w[0] != "0" for w in numbers)
    assert any(w in source.words for w in words)


def test_case_sensitive_dictionary_keeps_case() -> None:
    source = WordSource(Charset.from_name("alnum"), 2, 8, dictionary_ratio=1.0, number_ratio=0.0)
    assert any(w[0].isupper() for w in source.words[:2000])
    assert all(set(w) <= set(string.ascii_letters + string.digits) for w in source.words)


# --- trdg compatibility and fonts ------------------------------------------------------------


def test_getsize_shim_matches_getbbox() -> None:
    patch_pillow()
    patch_pillow()  # idempotent
    font = ImageFont.truetype(str(render.font_dir() / "Lato-Regular.ttf"), 32)
    _, _, right, bottom = font.getbbox("Wordy")
    assert font.getsize("Wordy") == (right, bottom)
    assert import_trdg() is import_trdg()
    from trdg import computer_text_generator  # trdg's own fonts use the basic (shaping-free) layout

    assert computer_text_generator.ImageFont.truetype(font.path, 20).layout_engine == ImageFont.Layout.BASIC


def test_fonts_for_case_sensitive_charsets() -> None:
    fonts = list_fonts()
    assert len(fonts) == 100 and fonts == sorted(fonts)
    usable, excluded = usable_fonts("all", Charset.from_name("alnum"))
    assert set(excluded) == render.CASE_UNRELIABLE_FONTS and not set(usable) & set(excluded)
    assert usable_fonts("all", Charset.from_name("digits_lower"))[1] == {}
    with pytest.raises(ParamsError, match="BEBAS"):
        usable_fonts(["Lato-Regular.ttf", "BEBAS___.ttf"], Charset.from_name("alnum"))
    assert missing_glyphs("SEASRN__.ttf", "a#~") == "#~" and missing_glyphs("Lato-Regular.ttf", "a#~") == ""


def test_overhanging_glyphs_are_not_clipped() -> None:
    # Plain background, no skew/blur: no ink in the first and last columns (resampling may leave
    # a faint halo there, a clipped glyph leaves dark pixels).
    cfg = RenderConfig(height=32)
    specs = [ImageSpec(w, f, i, render.BACKGROUNDS["plain"]) for i, (w, f) in
             enumerate([("jiffy", "Pacifico.ttf"), ("quaff", "Walkway_Oblique_Black.ttf"), ("fjord", "OpenSans-Italic.ttf")])]
    for image in render_images(specs, cfg, progress=False).images:
        assert image.shape[0] == 32 and image[:, [0, -1]].min() > 200


# --- retries ---------------------------------------------------------------------------------


def test_failed_renders_are_retried_deterministically(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = import_trdg()
    real = generator.generate
    calls: list[int] = []

    def flaky(**kwargs):  # None, an exception, invisible text, then the real image
        calls.append(kwargs["background_type"])
        if len(calls) == 1:
            return None
        if len(calls) == 2:
            raise ValueError("injected")
        if len(calls) == 3:
            mask = Image.new("RGB", (40, 32))
            mask.paste((0, 0, 1), (10, 8, 30, 24))
            return Image.new("RGB", (40, 32), (128, 128, 128)), mask
        return real(**kwargs)

    spec = ImageSpec("retry", "Lato-Regular.ttf", 5, render.BACKGROUNDS["image"])
    cfg = RenderConfig(height=32)
    monkeypatch.setattr(generator, "generate", flaky)
    first = render_images([spec], cfg, progress=False)
    calls.clear()
    second = render_images([spec], cfg, progress=False)
    assert first.retries == second.retries == 3 and calls[-1] == render.BACKGROUNDS["plain"]
    assert np.array_equal(first.images[0], second.images[0])

    monkeypatch.setattr(generator, "generate", lambda **kwargs: None)
    with pytest.raises(RenderError, match="failed 4 times"):
        render_images([spec], cfg, progress=False)


# --- the generate stage ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict]]:
    out = {}
    for workers in (1, 2):
        path = tmp_path_factory.mktemp(f"ocr-w{workers}")
        out[workers] = (path, generate(PARAMS, 3, path, workers=workers, progress=False))
    return out


def test_generate_is_byte_identical_across_worker_counts(generated: dict[int, tuple[Path, dict]]) -> None:
    (one, _), (two, _) = generated[1], generated[2]
    names = [f"{s}.npz" for s in SPLITS] + ["contact_sheet.png"]
    assert sorted(p.name for p in one.iterdir()) == sorted(names)
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_generated_splits(generated: dict[int, tuple[Path, dict]]) -> None:
    path, stats = generated[1]
    cs = Charset.from_name(PARAMS["charset"])
    heldout = set(stats["heldout_fonts"])
    assert len(heldout) == PARAMS["heldout_fonts"] and heldout <= set(FONTS)
    for split in SPLITS:
        a = load_arrays(path / f"{split}.npz")
        n = PARAMS["counts"][split]
        assert int(a["height"]) == 32 and a["pixels"].dtype == np.uint8 and a["widths"].dtype == np.int32
        assert len(a["widths"]) == len(a["texts"]) == len(a["fonts"]) == n == stats["counts"][split]
        assert (a["widths"] > 0).all() and a["pixels"].size == 32 * a["widths"].sum()
        assert all(cs.accepts(t) and t == cs.normalize(t) for t in a["texts"].tolist())
        fonts = set(a["fonts"].tolist())
        assert fonts <= heldout if split == "test_heldout_fonts" else not fonts & heldout
    assert stats["retries"] >= 0 and stats["images_per_s"] > 0
    with Image.open(path / "contact_sheet.png") as sheet:
        assert sheet.width > 0 and sheet.height >= 32
