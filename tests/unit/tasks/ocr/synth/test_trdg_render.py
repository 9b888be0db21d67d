"""Charset, word source and trdg rendering for the OCR task (tiny counts: seconds each)."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFont

from seqlab.core.errors import ParamsError
from seqlab.core.storage import load_arrays
from seqlab.tasks.ocr.charset import BLANK, Charset
from seqlab.tasks.ocr.config import OcrDataConfig
from seqlab.tasks.ocr.synth import trdg_render as render
from seqlab.tasks.ocr.synth.fonts import (
    CASE_UNRELIABLE_FONTS,
    font_dir,
    font_path,
    list_fonts,
    missing_glyphs,
    usable_fonts,
)
from seqlab.tasks.ocr.synth.trdg_compat import import_trdg, patch_pillow
from seqlab.tasks.ocr.synth.trdg_render import (
    SPLITS,
    ImageSpec,
    RenderConfig,
    RenderError,
    generate,
    render_images,
)
from seqlab.tasks.ocr.synth.words import WordSource

FONTS = ["Lato-Regular.ttf", "OpenSans-Italic.ttf", "Pacifico.ttf", "Roboto-Bold.ttf", "BEBAS___.ttf", "Raleway-Thin.ttf"]
PARAMS = {
    "height": 32,
    "charset": "digits_lower",
    "counts": {"train": 12, "val": 3, "test": 3, "test_heldout_fonts": 3, "test_lines": 3},
    "lines": {"share": 0.5, "words": [2, 3], "prose": 0.0, "chars": [8, 70]},
    "heldout_fonts": 2,
    "font_sources": ["trdg"],
    "fonts": FONTS,
    "words": {"min_len": 2, "max_len": 12, "dictionary_ratio": 0.6, "number_ratio": 0.2, "mixed_ratio": 0.0,
              "case_mix": {"as_spelled": 1.0, "capitalized": 0.0, "upper": 0.0}},
    "skew_angle": 2,
    "blur": 1,
    "distortion_ratio": 0.3,
    "background_weights": {"noise": 0.3, "plain": 0.3, "quasicrystal": 0.1, "image": 0.3},
    "text_colors": ["#000000", "#555555"],
    "workers": 1,
}


def data(**changes: Any) -> OcrDataConfig:
    """PARAMS as the typed `ocr.data` section the renderer reads, with top-level keys replaced by `changes`."""
    return OcrDataConfig.model_validate({**PARAMS, **changes})


DATA = data()


# --- charset ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "caseless"), [("english", 77, False), ("digits_lower", 37, True), ("alnum", 63, False),
                                                      ("printable", 95, False)])
def test_named_charsets(name: str, size: int, caseless: bool) -> None:
    cs = Charset.from_name(name)
    assert (len(cs), cs.num_classes, cs.caseless) == (size, size + 1, caseless)
    assert BLANK == 0 and cs.encode(cs.chars[0]) == [1]
    assert cs.encode("1 2")[1] == size and cs.has_space  # the space: the last class, documented in charset.py
    assert [c for c in cs.chars if c.isspace()] == [" "] and " " not in cs.glyphs


def test_encode_decode_roundtrip_and_blank() -> None:
    cs = Charset.from_name("alnum")
    ids = cs.encode("Hello42")
    assert min(ids) >= 1 and cs.decode(ids) == "Hello42"
    assert cs.decode([0, *ids, 0]) == "Hello42"  # blanks are skipped
    with pytest.raises(ValueError, match="outside"):
        cs.decode([cs.num_classes])
    with pytest.raises(ValueError, match="'!'"):
        cs.encode("hi!")


def test_english_is_the_default_and_reads_prose_with_case_and_punctuation() -> None:
    cs = Charset.from_name()
    assert cs.name == "english" and not cs.caseless
    # The documented class order: digits 1-10, a-z 11-36, A-Z 37-62, punctuation 63-76, space 77.
    assert cs.encode("0") == [1] and cs.encode("a") == [11] and cs.encode("A") == [37] and cs.encode(",") == [63]
    assert cs.encode("!") == [76] and cs.encode("a b")[1] == 77
    line = "\"Don't panic!\" (p. 42; 3/4 of 100%) - A & B: why?"
    assert cs.accepts(line) and cs.decode(cs.encode(line)) == line
    assert cs.normalize("  Two   Words ") == "Two Words"  # case kept, spaces single
    assert not cs.accepts("naïve") and not cs.accepts("[x]")
    assert Charset.from_name(cs.chars) == cs  # as meta.json and checkpoints store it


def test_case_folding_and_filtering() -> None:
    lower, alnum = Charset.from_name("digits_lower"), Charset.from_name("alnum")
    assert lower.normalize("London7") == "london7" and lower.encode("ABC") == lower.encode("abc")
    assert lower.accepts("London") and not lower.accepts("don't")
    assert alnum.normalize("London") == "London" and alnum.encode("A") != alnum.encode("a")
    explicit = Charset.from_name("abc")
    assert not explicit.caseless and explicit.accepts("cab") and not explicit.accepts("ABC")
    # A charset saved as its characters (e.g. in meta.json) loads back with its case folding.
    assert Charset.from_name(lower.chars) == lower and Charset.from_name(lower.chars).caseless


@pytest.mark.parametrize(("chars", "bad"), [("abca", "'a'"), ("ab  c", "' '"), ("ab\tc", "'\\\\t'")])
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


def _sample_before_case_mix(source: WordSource, rng: np.random.Generator, n: int) -> list[str]:
    """A frozen copy of WordSource.sample as it was before case_mix and mixed strings existed."""
    d, num = source.probs[0], source.probs[1]
    kinds = rng.choice(3, size=n, p=np.array([d, num, 1 - d - num]))
    lengths = rng.integers(source.min_len, source.max_len + 1, size=n)
    out = []
    for kind, length in zip(kinds.tolist(), lengths.tolist(), strict=True):
        if kind == 0:
            out.append(source.words[rng.integers(len(source.words))])
        elif kind == 1:
            out.append(str(rng.integers(1, 10)) + "".join(rng.choice(list(source.digits), size=length - 1)))
        else:
            out.append("".join(rng.choice(list(source.charset.glyphs), size=length)))  # the glyphs: no space
    return out


@pytest.mark.parametrize(("charset", "ratios"), [("digits_lower", (0.8, 0.1)), ("alnum", (0.5, 0.25)), ("printable", (0.0, 0.3))])
def test_words_without_recasing_or_mixes_are_the_old_draws(charset: str, ratios: tuple[float, float]) -> None:
    cs = Charset.from_name(charset)
    off = {"as_spelled": 1, "capitalized": 0, "upper": 0}
    for source in (WordSource(cs, 2, 12, *ratios), WordSource(cs, 2, 12, *ratios, case_mix=off, mixed_ratio=0.0)):
        assert source.sample(np.random.default_rng(5), 1500) == _sample_before_case_mix(source, np.random.default_rng(5), 1500)


def test_case_mix_proportions() -> None:
    letters = Charset("letters", string.ascii_lowercase, caseless=True)  # random strings: all lower case as drawn
    source = WordSource(letters, 2, 8, 0.0, 0.0, case_mix={"as_spelled": 0.6, "capitalized": 0.25, "upper": 0.15})
    words = source.sample(np.random.default_rng(0), 2000)
    shares = np.mean([[w.islower(), w[0].isupper() and w[1:].islower(), w.isupper()] for w in words], axis=0)
    assert np.allclose(shares, [0.6, 0.25, 0.15], atol=0.05), shares
    assert all(letters.accepts(w) for w in words)  # labels fold the case back


def test_case_mix_with_a_case_sensitive_charset() -> None:
    alnum = Charset.from_name("alnum")
    source = WordSource(alnum, 2, 12, 1.0, 0.0, case_mix={"upper": 1})
    words = source.sample(np.random.default_rng(0), 200)
    assert all(w == w.upper() and alnum.accepts(w) for w in words)
    with pytest.raises(ValueError, match="lacks the capital of 'a'"):
        WordSource(Charset.from_name("abc"), 2, 3, 0.0, 0.0, case_mix={"capitalized": 1})
    with pytest.raises(ValueError, match="unknown key 'lower'"):
        WordSource(alnum, 2, 3, 0.0, 0.0, case_mix={"lower": 1})
    with pytest.raises(ValueError, match=">= 0"):
        WordSource(alnum, 2, 3, 0.0, 0.0, case_mix={"upper": -1, "as_spelled": 2})


def test_mixed_strings_put_digits_among_letters() -> None:
    cs = Charset.from_name("digits_lower")
    source = WordSource(cs, 2, 12, 0.0, 0.0, mixed_ratio=1.0)
    words = source.sample(np.random.default_rng(3), 2000)
    assert words == source.sample(np.random.default_rng(3), 2000)
    assert all(cs.accepts(w) and 2 <= len(w) <= 12 for w in words)
    assert all(any(c.isalpha() for c in w) and any(c.isdigit() for c in w) for w in words)
    ordinals = [m for w in words if (m := re.fullmatch(r"([1-9][0-9]*)(st|nd|rd|th)", w))]
    assert len(ordinals) > 50
    assert all(m[2] == ("th" if int(m[1]) % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(int(m[1]) % 10, "th"))
               for m in ordinals)
    # Confusable swaps: dictionary words with o/l/i/s/z replaced by 0/1/1/5/2 ("b0ok").
    letters_of = str.maketrans("01152", "olisz")
    assert sum(w.translate(letters_of) in source.letter_words.get(len(w), ()) for w in words) > 100
    with pytest.raises(ValueError, match="mixed_ratio > 0 needs"):
        WordSource(Charset.from_name("0123456789"), 2, 5, 0.0, 0.0, mixed_ratio=0.5)
    with pytest.raises(ValueError, match="sum <= 1"):
        WordSource(cs, 2, 5, 0.6, 0.3, mixed_ratio=0.2)


# --- trdg compatibility and fonts ------------------------------------------------------------


def test_getsize_shim_matches_getbbox() -> None:
    patch_pillow()
    patch_pillow()  # idempotent
    font = ImageFont.truetype(str(font_dir() / "Lato-Regular.ttf"), 32)
    _, _, right, bottom = font.getbbox("Wordy")
    assert font.getsize("Wordy") == (right, bottom)
    assert import_trdg() is import_trdg()
    from trdg import computer_text_generator  # trdg's own fonts use the basic (shaping-free) layout

    assert computer_text_generator.ImageFont.truetype(font.path, 20).layout_engine == ImageFont.Layout.BASIC


def test_fonts_for_case_sensitive_charsets() -> None:
    names = list_fonts()
    assert len(names) == 100 and names == sorted(names)
    usable, excluded = usable_fonts("all", Charset.from_name("alnum"))
    assert set(excluded) == CASE_UNRELIABLE_FONTS and not set(usable) & set(excluded)
    assert usable_fonts("all", Charset.from_name("digits_lower"))[1] == {}
    with pytest.raises(ParamsError, match="BEBAS"):
        usable_fonts(["Lato-Regular.ttf", "BEBAS___.ttf"], Charset.from_name("alnum"))
    assert missing_glyphs(font_path("SEASRN__.ttf"), "a#~") == "#~"
    assert missing_glyphs(font_path("Lato-Regular.ttf"), "a#~") == ""


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
        out[workers] = (path, generate(DATA, 3, path, workers=workers, progress=False))
    return out


@pytest.mark.slow  # renders the splits twice (1 and 2 worker processes)
def test_generate_is_byte_identical_across_worker_counts(generated: dict[int, tuple[Path, dict]]) -> None:
    (one, _), (two, _) = generated[1], generated[2]
    names = [f"{s}.npz" for s in SPLITS] + ["contact_sheet.png"]
    assert sorted(p.name for p in one.iterdir()) == sorted(names)
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


@pytest.mark.slow
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
    with Image.open(path / "contact_sheet.png") as sheet:
        assert sheet.width > 0 and sheet.height >= 32


def test_generate_records_kinds_and_draws_prose_from_the_training_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("A visit to a strange place will bring fresh work.\n"
                                      "Beware of low-flying butterflies.\n")
    counts = {"train": 8, "val": 2, "test": 2, "test_heldout_fonts": 2, "test_lines": 4}
    params = data(counts=counts, lines={**PARAMS["lines"], "prose": 1.0},
                  background_weights={"noise": 0.0, "plain": 1.0, "quasicrystal": 0.0, "image": 0.0})
    stats = generate(params, 3, tmp_path / "ocr", progress=False, corpus_dir=corpus)
    assert stats["prose_words"] == 11  # digits_lower refuses "work.", "low-flying" and "butterflies."
    cs = Charset.from_name(PARAMS["charset"])
    for split in SPLITS:
        a = load_arrays(tmp_path / "ocr" / f"{split}.npz")
        kinds, texts = a["kinds"].tolist(), a["texts"].tolist()
        assert len(kinds) == len(texts) == counts[split]
        words = {"dictionary", "number", "random"}  # PARAMS' word mix
        assert set(kinds) <= (words | {"prose"} if split in ("train", "val", "test_lines") else words)
        prose = [t for t, k in zip(texts, kinds, strict=True) if k == "prose"]
        assert all(t in cs.normalize(" ".join((corpus / "train.txt").read_text().split())) for t in prose)
    assert set(load_arrays(tmp_path / "ocr" / "test_lines.npz")["kinds"].tolist()) == {"prose"}
