"""The line-band normaliser (normalize.crop_to_line) that predict and native-height evaluation apply: any
line height gives the same geometry, specks and neighbouring lines' fragments are dropped, tight crops
and trdg renders stay as they are."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.images import fit_image, fit_split
from seqlab.tasks.ocr.normalize import crop_to_line, prepare_image
from seqlab.tasks.ocr.synth.reserved_render import render_reserved_split
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

from .recognizer.test_augment import render

FONT = trdg_dir() / "fonts" / "latin" / "Lato-Regular.ttf"
TEXT = "Scans, 1987 (a-b): quick text"
SIZES = (13, 21, 32)  # font sizes giving line images ~25, ~40 and ~60 px tall with these margins
HEIGHT = 32


def line(text: str, size: int, top: float = 0.45, bottom: float = 0.35, side: float = 0.5) -> np.ndarray:
    """Binarised black-on-white `text` at font `size`, ground of top/bottom/side font sizes around its ink.

    Drawn 4x larger and scaled down, as a scanner sees print (no hinting at small sizes)."""
    font = ImageFont.truetype(str(FONT), 4 * size)
    x0, y0, x1, y1 = font.getbbox(text)
    t, b, s = round(4 * top * size), round(4 * bottom * size), round(4 * side * size)
    im = Image.new("L", (x1 - x0 + 2 * s, y1 - y0 + t + b), 255)
    ImageDraw.Draw(im).text((s - x0, t - y0), text, font=font, fill=0)
    im = im.resize((round(im.width / 4), round(im.height / 4)), Image.Resampling.LANCZOS)
    return np.where(np.asarray(im) < 128, 0, 255).astype(np.uint8)


def ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero((image < 128).any(axis=1)), np.flatnonzero((image < 128).any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def with_neighbours(image: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`image` with the lowest rows of a line above at its top edge, the highest of one below at its bottom
    edge (a quarter of a font size each), and specks near both edges."""
    out = image.copy()
    shown = size // 4
    above, below = line("gypsy jogs quietly", size, 0, 0, 0), line("THE TOP 42", size, 0, 0, 0)
    w = min(out.shape[1], above.shape[1])
    out[:shown, :w] = np.minimum(out[:shown, :w], above[-shown:, :w])
    w = min(out.shape[1], below.shape[1])
    out[-shown:, :w] = np.minimum(out[-shown:, :w], below[:shown, :w])
    rng = np.random.default_rng(seed)
    for _ in range(12):
        y = int(rng.choice([rng.integers(1, shown), rng.integers(out.shape[0] - shown, out.shape[0] - 2)]))
        x = int(rng.integers(0, out.shape[1] - 2))
        out[y:y + 2, x:x + 2] = 0
    return out


@pytest.mark.parametrize("top,bottom", [(0.45, 0.35), (0.9, 0.3), (0.3, 1.2)])
def test_any_line_height_gives_the_same_geometry(top: float, bottom: float) -> None:
    images = [line(TEXT, size, top, bottom) for size in SIZES]
    assert 23 <= images[0].shape[0] <= 33 and 55 <= images[-1].shape[0] <= 80
    prepared = [prepare_image(im, HEIGHT) for im in images]
    assert all(p.shape[0] == HEIGHT for p in prepared)
    # The same ink rows at every size, up to the band's whole rows: one row of a 21-row band is 5% of the scale.
    boxes = np.array([ink_box(p) for p in prepared])
    assert np.ptp(boxes[:, 0]) <= 3 and np.ptp(boxes[:, 1]) <= 3, boxes
    widths = np.array([p.shape[1] for p in prepared])
    assert np.ptp(widths) <= 0.15 * widths.mean(), widths
    # Uneven margins are evened out: the ink sits in the same rows whatever the crop's margins were.
    reference = ink_box(prepare_image(line(TEXT, SIZES[1], 1.0, 1.0), HEIGHT))
    assert abs(boxes[1, 0] - reference[0]) <= 1 and abs(boxes[1, 1] - reference[1]) <= 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("margins", [(0.5, 0.5), (0.8, 0.8)])  # a gap between the text and the fragments
def test_neighbouring_lines_at_the_edges_are_dropped(size: int, margins: tuple[float, float]) -> None:
    clean = line(TEXT, size, *margins)
    noisy = with_neighbours(clean, size)
    assert (noisy[0] < 128).any() and (noisy[-1] < 128).any()  # fragments touch both edges
    fragments = int((noisy != clean).sum())
    a, b = crop_to_line(clean), crop_to_line(noisy)
    assert a.shape == b.shape  # the fragments and specks do not move the band
    # Fragments are cut off or painted over; specks inside the band stay (a speck is a period's size).
    assert (a != b).sum() <= 4 * 12 < fragments
    assert not (b[0] < 128).any() and not (b[-1] < 128).any()


def test_light_text_on_dark_ground_is_cropped_alike() -> None:
    noisy = with_neighbours(line(TEXT, 26, 0.9, 0.9), 26)
    assert np.array_equal(crop_to_line(255 - noisy), 255 - crop_to_line(noisy))


def test_tight_crops_and_trdg_renders_stay_as_they_are() -> None:
    fonts = [trdg_dir() / "fonts" / "latin" / n for n in ("Lato-Regular.ttf", "Roboto-Bold.ttf", "OpenSans-Italic.ttf")]
    words = ["Hello", "ocean", "mix", "WORLD", "route66", "typography", "a few words, (1-2)."]
    tight, _ = render_reserved_split(words + ["minimum", "jiffy"], fonts, seed=0, height=32)
    assert all(np.array_equal(crop_to_line(im), im) for im in tight)
    for im in tight:  # cut at the ink itself: the i-dots touch the top edge, and stay
        rows = np.flatnonzero((im < 255).any(axis=1))
        touching = im[rows[0]:rows[-1] + 1]
        assert np.array_equal(crop_to_line(touching), touching)
    spec = importlib.util.find_spec("trdg")
    trdg_fonts = sorted(p.name for p in (Path(spec.origin).parent / "fonts" / "latin").glob("*.ttf")) if spec else []
    changed = []
    for font in trdg_fonts:
        for word in ("ocean", "mix", "hello", "two words here"):
            im = render(word, font)
            out = crop_to_line(im)
            if not np.array_equal(out, im):
                changed.append((font, word))
                assert out.shape[1] == im.shape[1] and (out < 160).sum() == (im < 160).sum(), (font, word)  # blank rows
    # A script face (Pacifico) and hairlines have more room above and below their x-height than the band keeps.
    assert len(changed) <= 0.02 * 4 * len(trdg_fonts), changed


def test_blank_small_and_very_wide_images() -> None:
    blank = np.full((50, 300), 230, np.uint8)
    assert np.array_equal(crop_to_line(blank), blank)
    small = np.full((7, 40), 255, np.uint8)
    small[2:5, 3:30] = 0
    assert np.array_equal(crop_to_line(small), small)
    wide = np.concatenate([line(TEXT, 26, 0.9, 0.9)] * 6, axis=1)  # 60 x ~2,400 px
    assert wide.shape[1] > 2000
    start = time.perf_counter()
    out = fit_image(wide, HEIGHT)
    assert time.perf_counter() - start < 2.0
    assert out.shape[0] == HEIGHT and ink_box(out)[:2] == ink_box(prepare_image(line(TEXT, 26, 0.9, 0.9), HEIGHT))[:2]


def test_fit_split_brings_native_heights_to_the_model_height_as_predict_does() -> None:
    images = [line(TEXT, size) for size in SIZES]
    native = OcrSplit(images, [TEXT.lower()] * 3, [[1]] * 3, np.array([im.shape[1] for im in images]), ["f"] * 3)
    fitted = fit_split(native, HEIGHT)
    assert all(np.array_equal(a, fit_image(b, HEIGHT)) for a, b in zip(fitted.images, images))
    assert fitted.widths.tolist() == [im.shape[1] for im in fitted.images]
    assert fitted.texts == native.texts and fitted.labels == native.labels and fitted.fonts == native.fonts
    fixed = OcrSplit([render("word")], ["word"], [[1]], np.array([render("word").shape[1]]), ["f"])
    assert fit_split(fixed, HEIGHT) is fixed  # splits at the model height are read as they are
