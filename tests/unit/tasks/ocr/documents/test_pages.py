"""The line finder on pages the test renders with known line boxes: one column, two columns, skewed, light on
dark, specks and rules; and the page/line decision predict makes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from seqlab.tasks.ocr.documents.pages import find_lines, looks_like_page, skew_angle
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

SIZE = 20  # font size in px
PITCH = 24  # line pitch: 1.2 em, ascenders of one line reach within a few px of the descenders above
TOLERANCE = 3  # px
TEXTS = ["The quick brown fox jumps", "over the lazy dog; Pack my", "box with five dozen liquor", "jugs (1987).",
         "Sphinx of black quartz, judge", "my vow: 42% gyp jig."]


def render(columns: list[tuple[int, int, list[str]]], size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A white page with black text: for each column (x, first line's y, lines); the lines' ink boxes in
    reading order."""
    font = ImageFont.load_default(size=SIZE)
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    boxes = []
    for x, y, lines in columns:
        for n, text in enumerate(lines):
            draw.text((x, y + n * PITCH), text, font=font, fill=0)
            boxes.append(ink_box(np.asarray(page), draw.textbbox((x, y + n * PITCH), text, font=font)))
    return np.asarray(page).copy(), boxes


def ink_box(page: np.ndarray, near: tuple[int, ...]) -> tuple[int, ...]:
    """The exact ink box inside the text's layout box (no neighbour reaches into it on these pages)."""
    x0, y0, x1, y1 = near
    ys, xs = np.nonzero(page[y0:y1, x0:x1] < 128)
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)


def assert_boxes(found: list[tuple[int, ...]], expected: list[tuple[int, ...]], tolerance: int = TOLERANCE) -> None:
    assert len(found) == len(expected), (found, expected)
    for got, want in zip(found, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= tolerance, (got, want)


def test_one_column_lines_in_order_with_their_boxes() -> None:
    page, boxes = render([(30, 40, TEXTS)], (420, 240))
    lines = find_lines(page)
    assert_boxes([line.box for line in lines], boxes, tolerance=1)  # no deskewing: exact up to anti-aliasing
    assert [line.column for line in lines] == [0] * len(TEXTS)
    for line in lines:  # a crop: dark text on light ground, taller than the line's ink, not holding two lines
        ink_h = line.box[3] - line.box[1]
        assert line.image.dtype == np.uint8 and line.image.mean() > 128
        assert ink_h < line.image.shape[0] < 2 * ink_h


def test_neighbours_ink_is_removed_from_each_crop() -> None:
    page, _ = render([(30, 40, TEXTS)], (420, 240))
    for line in find_lines(page):
        dark_rows = np.flatnonzero((line.image < 128).any(axis=1))
        extent, own = dark_rows[-1] - dark_rows[0] + 1, line.box[3] - line.box[1]
        assert own - 2 <= extent <= own  # only its own ink is left (the box: Otsu's threshold, here 128)


def test_two_columns_read_left_column_first() -> None:
    left, right = TEXTS[:5], [t[:14] for t in TEXTS[1:]]
    page, boxes = render([(20, 30, left), (330, 42, right)], (520, 200))
    lines = find_lines(page)
    assert_boxes([line.box for line in lines], boxes, tolerance=1)
    assert [line.column for line in lines] == [0] * len(left) + [1] * len(right)


def test_aligned_word_spaces_and_a_wide_gap_in_one_line_do_not_split_a_column() -> None:
    page, boxes = render([(30, 30, ["aaaa  bbbb cc", "cccc  dddd ee"])], (300, 100))  # double spaces, aligned
    assert_boxes([line.box for line in find_lines(page)], boxes, tolerance=2)
    page, boxes = render([(30, 30, ["aaaa            bbbb"])], (300, 100))  # one line, however wide its gap
    assert_boxes([line.box for line in find_lines(page)], boxes, tolerance=2)


@pytest.mark.parametrize("degrees", [2.0, -1.5])
def test_a_skewed_page_is_deskewed_and_boxes_map_back(degrees: float) -> None:
    page, boxes = render([(40, 60, TEXTS)], (460, 280))
    rotated = Image.fromarray(page).rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=255)
    lines = find_lines(np.asarray(rotated))
    # Pillow rotates counter-clockwise about the centre: lines then rise to the right.
    assert skew_angle(np.asarray(rotated) < 128) == pytest.approx(-degrees, abs=0.1)
    assert_boxes([line.box for line in lines], [rotate_box(b, degrees, page.shape) for b in boxes], tolerance=4)
    for line, box in zip(lines, boxes, strict=True):  # the crop is level: as tall as the unrotated line's crop
        assert line.image.shape[0] < 2 * (box[3] - box[1])


def rotate_box(box: tuple[int, ...], degrees: float, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axis-aligned box of `box` rotated as Image.rotate(degrees) rotates the page (about its centre)."""
    h, w = shape
    a = math.radians(degrees)
    x0, y0, x1, y1 = box
    xs, ys = [], []
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        dx, dy = x - w / 2, y - h / 2
        xs.append(w / 2 + dx * math.cos(a) + dy * math.sin(a))
        ys.append(h / 2 - dx * math.sin(a) + dy * math.cos(a))
    return (math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys)))


def test_light_text_on_dark_ground() -> None:
    page, boxes = render([(30, 40, TEXTS)], (420, 240))
    lines = find_lines(255 - page)
    assert_boxes([line.box for line in lines], boxes, tolerance=1)
    assert all(line.image.mean() > 128 for line in lines)  # crops come back dark on light


def test_specks_and_rules_make_no_lines() -> None:
    page, boxes = render([(30, 40, TEXTS)], (420, 260))
    page[20:22, 30:400] = 0  # a rule above the text
    page[225:227, 30:400] = 0  # and one below
    rng = np.random.default_rng(0)
    for y, x in zip(rng.integers(0, 260, 40), rng.integers(0, 420, 40), strict=True):
        page[y, x] = 0  # single-pixel specks all over
    assert_boxes([line.box for line in find_lines(page)], boxes, tolerance=1)


def test_blank_and_tiny_images_have_no_lines() -> None:
    assert find_lines(np.full((100, 100), 255, np.uint8)) == []
    assert find_lines(np.zeros((1, 5), np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        find_lines(np.zeros((10, 10), np.float32))


def test_a_page_is_detected_and_a_line_image_is_not() -> None:
    page, _ = render([(30, 40, TEXTS)], (420, 240))
    assert looks_like_page(find_lines(page), page.shape)
    line, _ = render([(4, 4, TEXTS[:1])], (300, 30))
    assert not looks_like_page(find_lines(line), line.shape)
    # A scanned line with its neighbours cut off at the top and bottom edges is one line, not a page.
    three, _ = render([(4, 10, TEXTS[:3])], (300, 100))
    cut = three[10 + PITCH - 8:10 + 2 * PITCH + 8]
    assert not looks_like_page(find_lines(cut), cut.shape)


# Small marks: i and j dots, periods, commas, apostrophes, quotes, hyphens and accents are components of a few
# pixels; each must stay in its own line's crop, tightly set pages too.
MARKS = ["Il a visité Zürich, déjà.", "Ein jij, mini-Café; it's ok.", "Très \"joli\" Ölé, jamais vu.",
         "Noël: l'été à Tōkyō, oui.", "Mijn fiets; ijs. Hi, Éric!"]


def render_marks(size: int, pitch: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A page of MARKS in Lato (a font with accents) at `size` px, `pitch` px apart; and each line drawn alone
    at the same place on a blank page of the same size."""
    font = ImageFont.truetype(str(trdg_dir() / "fonts" / "latin" / "Lato-Regular.ttf"), size)
    shape = (30 + pitch * (len(MARKS) + 1), 30 + 16 * size)
    page = Image.new("L", shape[::-1], 255)
    alone = []
    for n, text in enumerate(MARKS):
        ImageDraw.Draw(page).text((30, 30 + n * pitch), text, font=font, fill=0)
        one = Image.new("L", shape[::-1], 255)
        ImageDraw.Draw(one).text((30, 30 + n * pitch), text, font=font, fill=0)
        alone.append(np.asarray(one))
    return np.asarray(page).copy(), alone


def small_marks(ink: np.ndarray, size: int) -> int:
    """How many components of `ink` are small marks (both sides under 0.3 of the font size)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    return int(((stats[1:, cv2.CC_STAT_WIDTH] < 0.3 * size) & (stats[1:, cv2.CC_STAT_HEIGHT] < 0.3 * size)).sum())


@pytest.mark.parametrize(("size", "pitch"), [(20, 24), (20, 23), (32, 37), (13, 15)])  # 1.2 and ~1.15 em
def test_dots_punctuation_and_accents_stay_in_their_lines_crop(size: int, pitch: int) -> None:
    page, alone = render_marks(size, pitch)
    lines = find_lines(page)
    assert len(lines) == len(MARKS)
    for line, own in zip(lines, alone, strict=True):
        ink = own < 128
        ys, xs = np.nonzero(ink)
        assert_boxes([line.box], [(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)])
        crop = line.image < 128
        # Every mark drawn with the line is in its crop, and none of a neighbour's: the same small components
        # and the same ink, up to the anti-aliased pixels where two lines' strokes meet.
        assert small_marks(crop, size) == small_marks(ink, size)
        assert abs(int(crop.sum()) - int(ink.sum())) <= 0.01 * ink.sum()


def test_specks_far_from_lines_are_dropped_and_marks_beside_them_kept() -> None:
    page, alone = render_marks(20, 24)
    page[4:7, 200:203] = 0  # a 3x3 speck well above the first line: far from every line's core
    page[page.shape[0] - 6:page.shape[0] - 3, 100:103] = 0  # and one well below the last
    page[60:63, 300:303] = 0  # and one out in the right margin, level with a line's dots
    lines = find_lines(page)
    assert len(lines) == len(MARKS)
    for line, own in zip(lines, alone, strict=True):
        ys, xs = np.nonzero(own < 128)
        assert_boxes([line.box], [(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)])
