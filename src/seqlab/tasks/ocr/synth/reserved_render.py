"""An evaluation split rendered without trdg: plain Pillow, reserved fonts, words and text from other sources.

A test set drawn by the training renderer shares its quirks (canvas sizing, margins, noise
model, trdg's dictionary); a model can score well on it by learning those. This split shares
none of them: Debian's word list (`wamerican`) instead of trdg's, lines of prose from the reserved
corpus (license texts, data/ocr-corpus/reserved.txt) instead of the training corpus (fortunes), font
families that training never uses (the caller passes their files), and Pillow's own text drawing.

Two variants of the same words and fonts (the font, size and margins of image i are drawn
before anything else, so both variants agree on them):
- clean: black on white, cropped to the ink with a 1-2 px margin, resized to the height with
  the aspect ratio kept (LANCZOS). Text is drawn at 64-96 px first, so glyph shapes come from
  the outlines, not from hinting at 32 px.
- degraded: paper and ink colours (tinted, converted to grey like a grey-scale scan), some
  light-on-dark, rotation within +-3 degrees, loose margins, uneven lighting, low resolution,
  blur, Gaussian noise and JPEG compression at quality 20-60, each with its own probability.

Lines (windows of RESERVED_CHARS characters of prose, FreeType's own space advance between words) are drawn
the same way; in the degraded variant their rotation is scaled down with their length, so that a
long line drifts at most about as many text heights as a rotated word (a line finder deskews more
than that away).

Scans (test_reserved_scans): lines as a scanner and a line finder hand them over, at their native
height of 25-60 px (the model's normaliser brings them to its height, so the split measures it too):
loose and uneven margins, sometimes bits of the lines above and below at the top or bottom edge, skew
within +-1 degree, sometimes baseline curl, then binarised (black on white, 0 or 255) at a threshold
that makes strokes thinner or bolder, often after a slight blur (a low-resolution scan), with broken
strokes and specks. The text's ink never leaves the image: curl stays within the margins, and the
neighbours' fragments within the margin rows, a gap away from the text.

Tight crops are what a word detector hands over, but they hide the line height: "ooo" and "OOO"
give the same image. Caseless labels (the default charset) do not care; case-sensitive ones
lose a little on words made only of such letters.

Image i depends only on (seed, i, its word, the font list), never on the worker count: the same
inputs give byte-identical images. The layout engine is FreeType's basic one, so the output
does not depend on whether Pillow was built with libraqm.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from seqlab.core.errors import DataError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import save_split, write_meta
from seqlab.tasks.ocr.synth.fonts import missing_glyphs, reserved_fonts
from seqlab.tasks.ocr.synth.prose import PROSE_KIND, ProseSource
from seqlab.tasks.ocr.synth.words import WordSource
from seqlab.tasks.ocr.synth.workers import map_in_order

DEBIAN_WORDS = Path("/usr/share/dict/american-english")  # Debian package wamerican
# Characters per reserved line: fixed, so the evaluation lines stay the same when training params change.
RESERVED_CHARS = (10, 70)
LINE_ROTATION_ASPECT = 6.0  # a line wider than this many ink heights is rotated proportionally less
DRAW_SIZES = (64, 72, 80, 88, 96)  # font sizes in px; few distinct values keep the font cache small
CASE_MIX = {"as_spelled": 0.6, "capitalized": 0.25, "upper": 0.15}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow converts RGB to L
MIN_CONTRAST = 70  # grey-level gap between paper and ink after conversion; below it faint inks vanish in noise

# Colours before conversion to grey: paper and ink as people scan and photograph them.
PAPERS = ((255, 255, 255), (245, 242, 235), (240, 228, 180), (212, 212, 212), (215, 228, 240),
          (245, 220, 220), (200, 170, 130), (175, 175, 175), (205, 230, 205))
INKS = ((0, 0, 0), (55, 55, 55), (100, 100, 100), (20, 40, 150), (150, 20, 20), (20, 90, 40), (90, 50, 20))
DARK_PAPERS = ((0, 0, 0), (45, 45, 45), (20, 40, 90), (20, 60, 30), (100, 20, 20))
LIGHT_INKS = ((255, 255, 255), (215, 215, 215), (240, 220, 80), (190, 235, 245))


@dataclass(frozen=True)
class Degradations:
    """Probabilities and ranges of the degraded variant (ranges are uniform, in output pixels)."""

    light_on_dark: float = 0.12
    max_angle: float = 3.0  # degrees, either way
    loose_margins: float = 0.35
    margin_y: tuple[int, int] = (2, 6)  # loose margins: top and bottom each drawn from this range
    margin_x: tuple[int, int] = (2, 12)
    uneven_light: float = 0.3
    light_falloff: tuple[float, float] = (0.65, 0.9)  # brightness at the dark end of the gradient
    low_res: float = 0.25
    low_res_height: tuple[int, int] = (14, 22)  # downscaled to this height, then back up
    blur: float = 0.5
    blur_radius: tuple[float, float] = (0.3, 1.0)
    noise: float = 0.6
    noise_sigma: tuple[float, float] = (3.0, 12.0)
    jpeg: float = 0.6
    jpeg_quality: tuple[int, int] = (20, 60)


@dataclass(frozen=True)
class ScanLook:
    """The scan-like lines (ranges are uniform; lengths in ink heights, the height of the line's own ink)."""

    line_height: tuple[int, int] = (25, 60)  # image height in px
    margin: tuple[float, float] = (0.05, 0.4)  # ground above and below the ink, each
    margin_x: tuple[float, float] = (0.1, 1.0)  # ground left and right of the ink, each
    max_angle: float = 1.0  # skew in degrees, either way
    fragment: float = 0.25  # probability, per edge, of a fragment of the neighbouring line there
    fragment_margin: tuple[float, float] = (0.3, 0.5)  # the margin on that side
    fragment_share: tuple[float, float] = (0.3, 0.7)  # share of that margin the fragment covers
    curl: float = 0.25
    curl_amplitude: tuple[float, float] = (0.03, 0.1)  # at most half the smaller margin
    curl_period: tuple[float, float] = (8.0, 25.0)
    blur: float = 0.5  # before the threshold
    blur_radius: tuple[float, float] = (0.3, 0.8)  # px
    threshold: tuple[float, float] = (0.35, 0.65)  # share of full coverage that becomes ink
    broken: float = 0.3
    broken_density: tuple[float, float] = (0.01, 0.04)  # share of pixels dropped from the ink in 2x2 blobs
    speckle: float = 0.5
    speckle_density: tuple[float, float] = (0.0003, 0.002)  # share of pixels made specks, each polarity


def reserved_word_source(
    charset: Charset,
    min_len: int = 2,
    max_len: int = 12,
    dictionary_ratio: float = 0.7,
    number_ratio: float = 0.1,
    mixed_ratio: float = 0.2,
    case_mix: dict[str, float] | None = None,
    dictionary: Path = DEBIAN_WORDS,
) -> WordSource:
    """The words of the reserved word splits: Debian words, numbers, mixes.

    No random strings by default: the split measures reading real text. Words are recased by
    `case_mix` (default CASE_MIX).
    """
    if not dictionary.is_file():
        raise DataError(f"{dictionary} is missing: install Debian's wamerican package (make fonts)")
    return WordSource(charset, min_len, max_len, dictionary_ratio, number_ratio, dictionary=dictionary,
                      case_mix=CASE_MIX if case_mix is None else case_mix, mixed_ratio=mixed_ratio)


def reserved_lines(count: int, charset: Charset, seed: int, corpus_dir: Path | None = None) -> list[str]:
    """The `count` lines of the reserved line splits for `seed`, as written: windows of RESERVED_CHARS
    characters of the reserved corpus (data/ocr-corpus/reserved.txt, or `corpus_dir`'s). Every split drawn
    from the reserved text (clean, degraded, scan-like) takes its lines from here, so they read the same text."""
    from seqlab.core.seeding import derive_seed  # here, not at module level: spawned workers skip torch

    prose = ProseSource.from_corpus("reserved", charset, RESERVED_CHARS[0], RESERVED_CHARS[1], corpus_dir)
    return prose.sample(np.random.default_rng(derive_seed(seed, "ocr", "reserved", "lines")), count)


def render_reserved_split(
    words: Sequence[str],
    font_paths: Sequence[Path],
    seed: int,
    height: int = 32,
    degraded: bool = False,
    workers: int = 1,
    degradations: Degradations = Degradations(),
    font_names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[str]]:
    """uint8 (height, W_i) grey images of `words` (dark on light unless degraded says otherwise) and
    the name of the font each was drawn with; independent of `workers`.

    `font_names` are recorded for the fonts (default: file names, which are not unique across
    packages: fonts-liberation and fonts-liberation2 both ship LiberationSans-Regular.ttf).
    """
    if height < 16:
        raise ValueError(f"height must be >= 16 so that loose margins leave room for the text (got {height})")
    names, fonts = _checked_fonts(words, font_paths, font_names)
    render = partial(_render_range, words=tuple(words), fonts=fonts, seed=seed, height=height,
                     degradations=degradations if degraded else None)
    parts = _in_workers(render, len(words), workers)
    images = [im for part in parts for im, _ in part]
    used = [names[f] for part in parts for _, f in part]
    return images, used


def render_scan_split(
    lines: Sequence[str],
    font_paths: Sequence[Path],
    seed: int,
    workers: int = 1,
    look: ScanLook = ScanLook(),
    font_names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[str]]:
    """uint8 (H_i, W_i) scan-like images of `lines` (0 ink, 255 paper; heights in `look.line_height`) and the
    name of the font each was drawn with; image i depends only on (seed, i, its line, the fonts)."""
    names, fonts = _checked_fonts(lines, font_paths, font_names)
    parts = _in_workers(partial(_scan_range, lines=tuple(lines), fonts=fonts, seed=seed, look=look), len(lines),
                        workers)
    return [im for part in parts for im, _ in part], [names[f] for part in parts for _, f in part]


def _checked_fonts(texts: Sequence[str], font_paths: Sequence[Path],
                   font_names: Sequence[str] | None) -> tuple[list[str], tuple[str, ...]]:
    """The names to record and the font files as strings, after the checks every split makes."""
    if not font_paths:
        raise ValueError("a reserved split needs at least one font file")
    names = [Path(p).name for p in font_paths] if font_names is None else list(font_names)
    if len(names) != len(font_paths):
        raise ValueError(f"got {len(names)} font names for {len(font_paths)} font files")
    bad = next((i for i, w in enumerate(texts) if not w or w != " ".join(w.split())), None)
    if bad is not None:
        raise ValueError(f"text {bad} ({texts[bad]!r}) must be non-empty words separated by single spaces")
    fonts = tuple(str(p) for p in font_paths)
    chars = "".join(sorted(set("".join(texts)) - {" "}))
    for font in fonts:  # a missing glyph would draw a box or nothing under a label that names a character
        if missing := missing_glyphs(font, chars):
            raise ValueError(f"font {font} has no glyph for {missing!r}")
    return names, fonts


def _in_workers(render: Callable[[tuple[int, int]], list[Any]], count: int, workers: int) -> list[list[Any]]:
    """``render((start, stop))`` over ranges covering 0..count, in order, in `workers` processes."""
    size = max(1, min(256, math.ceil(count / (max(workers, 1) * 8))))
    return list(map_in_order(render, [(s, min(s + size, count)) for s in range(0, count, size)], workers))


def _render_range(
    bounds: tuple[int, int], words: tuple[str, ...], fonts: tuple[str, ...], seed: int, height: int,
    degradations: Degradations | None,
) -> list[tuple[np.ndarray, int]]:
    return [_render_word(words[i], fonts, seed, i, height, degradations) for i in range(*bounds)]


def _render_word(
    text: str, fonts: tuple[str, ...], seed: int, index: int, height: int, deg: Degradations | None
) -> tuple[np.ndarray, int]:
    """Image `index` of the split and the index of its font."""
    rng = np.random.default_rng([seed, index])
    # Shared by both variants: drawn first, in this order.
    font_id = int(rng.integers(len(fonts)))
    size = DRAW_SIZES[rng.integers(len(DRAW_SIZES))]
    margins = rng.integers(1, 3, size=4)  # top, left, bottom, right
    if deg is None:
        alpha = _fit(_ink(text, _font(fonts[font_id], size), 0.0), height, margins)
        return 255 - alpha, font_id

    light_on_dark = rng.random() < deg.light_on_dark
    paper, ink = _colours(rng, light_on_dark)
    angle = rng.uniform(-deg.max_angle, deg.max_angle)
    if " " in text:  # lines: the same drift in text heights as a word's, not a steeper slope across the image
        left, top, right, bottom = _font(fonts[font_id], size).getbbox(text)
        angle *= min(1.0, LINE_ROTATION_ASPECT * (bottom - top) / max(right - left, 1))
    if rng.random() < deg.loose_margins:
        ys, xs = rng.integers(deg.margin_y[0], deg.margin_y[1] + 1, 2), rng.integers(deg.margin_x[0], deg.margin_x[1] + 1, 2)
        margins = np.array([ys[0], xs[0], ys[1], xs[1]])
    alpha = _fit(_ink(text, _font(fonts[font_id], size), angle), height, margins).astype(np.float64) / 255
    gray = paper + (ink - paper) * alpha
    if rng.random() < deg.uneven_light:  # a lamp on one side: brightness falls off linearly
        falloff, axis, flip = rng.uniform(*deg.light_falloff), int(rng.integers(2)), rng.random() < 0.5
        ramp = np.linspace(1.0, falloff, gray.shape[axis])[:: -1 if flip else 1]
        gray = gray * (ramp[:, None] if axis == 0 else ramp[None, :])
    image = Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8))
    if rng.random() < deg.low_res:
        small_h = int(rng.integers(deg.low_res_height[0], deg.low_res_height[1] + 1))
        small = image.resize((max(1, round(image.width * small_h / height)), small_h), Image.Resampling.BILINEAR)
        image = small.resize(image.size, Image.Resampling.BILINEAR)
    if rng.random() < deg.blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*deg.blur_radius)))
    out = np.asarray(image, dtype=np.float64)
    if rng.random() < deg.noise:
        out = out + rng.normal(0.0, rng.uniform(*deg.noise_sigma), out.shape)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if rng.random() < deg.jpeg:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=int(rng.integers(deg.jpeg_quality[0], deg.jpeg_quality[1] + 1)))
        with Image.open(buffer) as decoded:
            out = np.asarray(decoded.convert("L"), dtype=np.uint8)
    return np.ascontiguousarray(out), font_id


def _scan_range(bounds: tuple[int, int], lines: tuple[str, ...], fonts: tuple[str, ...], seed: int,
                look: ScanLook) -> list[tuple[np.ndarray, int]]:
    return [_render_scan(lines[i], fonts, seed, i, look) for i in range(*bounds)]


def _render_scan(text: str, fonts: tuple[str, ...], seed: int, index: int, look: ScanLook) -> tuple[np.ndarray, int]:
    """Scan-like image `index` of the split and the index of its font.

    Composed at the drawing size (64-96 px fonts) as coverage, then scaled to the line height and binarised.
    """
    rng = np.random.default_rng([seed, index])
    font_id = int(rng.integers(len(fonts)))
    font = _font(fonts[font_id], DRAW_SIZES[rng.integers(len(DRAW_SIZES))])
    angle = rng.uniform(-look.max_angle, look.max_angle)
    ink = np.asarray(_ink(text, font, angle), dtype=np.float64) / 255  # the line's coverage, cropped to it
    ih, iw = ink.shape
    sides = rng.random(2) < look.fragment  # top, bottom
    margins = [rng.uniform(*(look.fragment_margin if side else look.margin)) for side in sides]
    top, bottom = (round(m * ih) for m in margins)
    left, right = (round(rng.uniform(*look.margin_x) * ih) for _ in range(2))
    canvas = np.zeros((top + ih + bottom, left + iw + right))
    canvas[top:top + ih, left:left + iw] = ink
    words = text.split()
    for above, side, room, neighbour in ((True, sides[0], top, words[1:] + words[:1]), (False, sides[1], bottom, words[::-1])):
        if not side:
            continue
        # The line above shows its lowest rows, the one below its highest, over part of the margin and a gap
        # away from the text; same page: same font and skew.
        other = np.asarray(_ink(" ".join(neighbour), font, angle), dtype=np.float64) / 255
        shown = max(1, min(other.shape[0], round(rng.uniform(*look.fragment_share) * room)))
        x = int(rng.integers(-(other.shape[1] // 3), canvas.shape[1] // 3 + 1))
        part = other[-shown:] if above else other[:shown]
        rows = slice(0, shown) if above else slice(canvas.shape[0] - shown, canvas.shape[0])
        x0, x1 = max(0, x), min(canvas.shape[1], x + part.shape[1])
        if x1 > x0:
            canvas[rows, x0:x1] = np.maximum(canvas[rows, x0:x1], part[:, x0 - x:x1 - x])
    if rng.random() < look.curl:  # columns shifted up and down by a slow wave, within the margins
        amplitude = min(rng.uniform(*look.curl_amplitude) * ih, 0.5 * min(top, bottom))
        period = rng.uniform(*look.curl_period) * ih
        shift = np.rint(amplitude * np.sin(2 * np.pi * np.arange(canvas.shape[1]) / period + rng.uniform(0, 2 * np.pi)))
        source = np.arange(canvas.shape[0])[:, None] - shift[None, :].astype(int)
        inside = (source >= 0) & (source < canvas.shape[0])
        canvas = np.where(inside, np.take_along_axis(canvas, source.clip(0, canvas.shape[0] - 1), axis=0), 0.0)
    height = int(rng.integers(look.line_height[0], look.line_height[1] + 1))
    width = max(1, round(canvas.shape[1] * height / canvas.shape[0]))
    image = Image.fromarray(np.rint(canvas * 255).astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
    if rng.random() < look.blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*look.blur_radius)))
    coverage = np.asarray(image, dtype=np.float64) / 255
    binary = coverage > rng.uniform(*look.threshold)
    if rng.random() < look.broken:
        binary &= ~_blobs(rng.random(binary.shape) < rng.uniform(*look.broken_density) / 4)
    if rng.random() < look.speckle:
        density, u = rng.uniform(*look.speckle_density), rng.random(binary.shape)
        binary = (binary | (u < density) | _blobs(u < density / 3)) & ~((u > 1 - density) | _blobs(u > 1 - density / 3))
    return np.where(binary, 0, 255).astype(np.uint8), font_id


def _blobs(seeds: np.ndarray) -> np.ndarray:
    """Seed pixels (bool, H x W) grown into 2x2 blobs (down and right)."""
    out = seeds.copy()
    out[1:] |= seeds[:-1]
    out[:, 1:] |= seeds[:, :-1]
    out[1:, 1:] |= seeds[:-1, :-1]
    return out


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _ink(text: str, font: ImageFont.FreeTypeFont, angle: float) -> Image.Image:
    """The text's coverage (0 paper, 255 ink), rotated by `angle` degrees and cropped to the ink."""
    left, top, right, bottom = font.getbbox(text)
    pad = int(font.size) // 2  # room for overhangs the advance-based box may miss
    canvas = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=font, fill=255)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"font {font.path!r} draws no ink for {text!r}")
    ink = canvas.crop(box)
    if angle:  # after the crop: rotating the padded canvas took 3x longer
        ink = ink.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
        ink = ink.crop(ink.getbbox())
    return ink


def _fit(ink: Image.Image, height: int, margins: np.ndarray) -> np.ndarray:
    """`ink` resized so that it fills `height` minus the top and bottom margins, then padded by the margins."""
    top, left, bottom, right = (int(m) for m in margins)
    ink_h = height - top - bottom
    ink_w = max(1, round(ink.width * ink_h / ink.height))
    small = np.asarray(ink.resize((ink_w, ink_h), Image.Resampling.LANCZOS), dtype=np.uint8)
    out = np.zeros((height, left + ink_w + right), dtype=np.uint8)
    out[top : top + ink_h, left : left + ink_w] = small
    return out


def _colours(rng: np.random.Generator, light_on_dark: bool) -> tuple[float, float]:
    """Paper and ink grey levels of a jittered colour pair at least MIN_CONTRAST apart."""
    papers, inks = (DARK_PAPERS, LIGHT_INKS) if light_on_dark else (PAPERS, INKS)
    for _ in range(20):
        paper = _luma(np.clip(np.array(papers[rng.integers(len(papers))]) + rng.integers(-15, 16, 3), 0, 255))
        ink = _luma(np.clip(np.array(inks[rng.integers(len(inks))]) + rng.integers(-15, 16, 3), 0, 255))
        if abs(paper - ink) >= MIN_CONTRAST:
            return paper, ink
    return (0.0, 255.0) if light_on_dark else (255.0, 0.0)


def _luma(rgb: np.ndarray) -> float:
    return float(np.dot(LUMA, rgb))


EVAL_CLASSES = ("serif", "sans", "slab", "mono")  # text faces; the reserved script face (Z003) is left out


def evaluation_fonts(charset: Charset) -> tuple[list[Path], list[str]]:
    """The reserved text faces covering `charset`, one file per (family, style), and their names.

    Two Debian packages ship Liberation (v1 and v2): the first file of each family and style wins.
    """
    chosen: dict[tuple[str, str], Path] = {}
    for path, family, style, font_class in reserved_fonts(charset):
        if font_class in EVAL_CLASSES and "Math" not in family:  # DejaVu Math TeX Gyre: formulas, not words
            chosen.setdefault((family, style), path)
    keys = sorted(chosen)
    return [chosen[k] for k in keys], [f"{family} {style}" for family, style in keys]


def generate_reserved(count: int, charset: Charset, height: int, seed: int, out_dir: Path,
                      workers: int = 1, line_count: int = 1, scan_count: int = 1,
                      corpus_dir: Path | None = None) -> dict[str, Any]:
    """The `seqlab render-reserved` stage: test_reserved (clean) and test_reserved_degraded (the same
    words and fonts, degraded) of `count` words, test_reserved_lines and test_reserved_lines_degraded of
    `line_count` lines of reserved prose (:func:`reserved_lines`), test_reserved_scans of `scan_count`
    scan-like lines (those lines' texts, in turn, at native heights), under `out_dir`, with meta.json and a
    contact sheet; returns stats."""
    from seqlab.core.seeding import derive_seed  # here, not at module level: spawned workers skip torch
    from seqlab.tasks.ocr.synth.trdg_render import contact_sheet

    start = time.perf_counter()
    font_paths, font_names = evaluation_fonts(charset)
    words, word_kinds = reserved_word_source(charset).sample_with_kinds(
        np.random.default_rng(derive_seed(seed, "ocr", "reserved", "words")), count)
    lines = reserved_lines(line_count, charset, seed, corpus_dir)
    line_kinds = [PROSE_KIND] * len(lines)
    stats: dict[str, Any] = {"fonts": len(font_paths), "families": len({n.rsplit(' ', 1)[0] for n in font_names})}
    for split, texts, kinds, degraded in (
        ("test_reserved", words, word_kinds, False), ("test_reserved_degraded", words, word_kinds, True),
        ("test_reserved_lines", lines, line_kinds, False), ("test_reserved_lines_degraded", lines, line_kinds, True),
    ):
        kind = "lines" if texts is lines else "render"  # each set of texts its own seed: words stay as before
        images, fonts = render_reserved_split(texts, font_paths, derive_seed(seed, "ocr", "reserved", kind), height,
                                              degraded, workers, font_names=font_names)
        labels = [charset.normalize(t) for t in texts]
        save_split(out_dir / f"{split}.npz", images, labels, fonts, height, kinds)
        if split == "test_reserved_degraded":
            contact_sheet(out_dir / "contact_sheet.png", images, labels, fonts)
        stats[split] = {"count": len(images), "mean_width": round(float(np.mean([im.shape[1] for im in images])), 2)}
    scans = [lines[i % len(lines)] for i in range(scan_count)]
    images, fonts = render_scan_split(scans, font_paths, derive_seed(seed, "ocr", "reserved", "scans"), workers,
                                      font_names=font_names)
    save_split(out_dir / "test_reserved_scans.npz", images, [charset.normalize(t) for t in scans], fonts, None,
               [PROSE_KIND] * len(scans))
    stats["test_reserved_scans"] = {"count": len(images),
                                    "mean_width": round(float(np.mean([im.shape[1] for im in images])), 2),
                                    "mean_height": round(float(np.mean([im.shape[0] for im in images])), 2)}
    write_meta(out_dir, charset, height)
    stats["seconds"] = round(time.perf_counter() - start, 2)
    return stats
