"""Printed pages cut into text lines, with no model: binarise, deskew, split columns, find lines, crop.

:func:`find_lines` takes a uint8 grayscale page and returns its lines in reading order (columns left to
right, lines top to bottom), each with its box on the original page and a deskewed crop for the recognizer.
The classical method of ocropy's ``gpageseg`` and kraken's legacy box segmenter, in these steps:

1. **Binarise** with Otsu's threshold on the grey-level histogram. Text is the minority class: when more
   than half the pixels fall on the dark side the page is light text on dark ground, and it is inverted
   (crops always come back dark text on light ground). Otsu suits scans and clean renders; a photo with
   uneven light needs a local threshold (Sauvola), which this module does not do.
2. **Deskew**: the angle within +-MAX_SKEW degrees that maximises the variance of the horizontal projection
   profiles of the ink (text lines are then sharp peaks), one profile per vertical strip of the page (STRIPS:
   columns set half a line apart do not blur each other's), searched coarse (COARSE_STEP) then fine
   (FINE_STEP) on the ink pixels' coordinates, sheared rather than rotated (exact enough at a few degrees).
   A page whose best angle moves its far edge by under a pixel is not rotated at all.
3. **Connected components** (8-connected, OpenCV's labelling) of the ink. The median component height ``h`` (about an
   x-height: most glyphs are lowercase letters) is the unit of every size below. Rules (long thin
   strokes) and figures (taller than BIG h) are not text. Marks (lower than MARK_H h and narrower than MARK_W
   h: i and j dots, accents, periods, commas, quotes, hyphens, specks) never make or shape a line; they join
   the line whose letters' core they sit above or on (step 5), and only those far from every line are
   dropped as specks. Size alone cannot tell them apart: a 12 pt i's dot at 300 dpi is 3x3 px, under 0.2 h.
4. **Columns**: split where a vertical white gap at least GUTTER h wide runs the text's whole height
   (no component covers it), kept only if the text on each side holds at least two lines, so that the
   aligned word spaces of a short text never split it. A heading across two columns hides their gutter:
   such a page reads as one column (a limitation: no recursive X-Y cut).
5. **Lines** of a column from a horizontal profile of its letters' vertical centres (each letter-sized
   component adds its width over +-CENTRE_BAND h around its centre, then a light smoothing): letters of one
   line centre within a fraction of h of each other, so the profile has a gap between lines even where
   ascenders and descenders of neighbours touch or overlap, which the plain ink profile does not. A band
   taller than SPLIT_BAND times the expected line pitch (the median distance between bands) is split at
   its profile's lowest point. Every component then joins the line whose band is nearest its centre
   (within JOIN h); a component spanning two lines (touching glyphs) the one it overlaps most. Marks then
   join the line whose core (its letters' median top to median bottom) they lie in or nearest to, a distance
   below a core counting BELOW_COST times one above (dots and accents sit above their core, periods and
   commas on its baseline), when within JOIN h of it and beside its letters. Lone pixels join the same way
   (at 10 pt on screen an i's dot binarises to one) but size neither boxes nor words.
6. **Boxes and crops**: a line's box is the box of its components, mapped back to the original page after
   deskewing (the axis-aligned box of the rotated rectangle). Its crop, from the deskewed page, is padded
   by PAD_V line heights above and below and PAD_H h left and right, and the ink of every other line in it
   (ascenders, descenders and marks reaching in) and of rules and figures is painted over with the paper
   level (specks that joined no line stay, as in a crop at the right box), so that the recognizer's
   own line-band cut (normalize.crop_to_line) sees one line on clean ground. Word boxes come from gaps
   wider than WORD_GAP h between the line's components.

Measured on the shipped sample (Tesseract's phototest, 8 lines) and synthetic pages: see docs/pages.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: pixel columns x0..x1-1 and rows y0..y1-1

MAX_SKEW = 5.0  # degrees searched either way
COARSE_STEP, FINE_STEP = 0.25, 0.02  # degrees
STRIPS = 4  # the deskew profile is taken in this many vertical strips, summed
MAX_POINTS = 40_000  # ink pixels used for the deskew search (a strided sample of larger pages)
MIN_INK = 6  # fewer ink pixels: no text
# Sizes in units of h, the median component height
# Marks (dots, accents, periods, commas, quotes, hyphens, specks) join lines but never make or shape one: lower
# than MARK_H and narrower than MARK_W. Measured in Lato at 13-32 px and on phototest: marks reach 0.5 h tall
# (a quote's stroke) and 0.6 h wide (a hyphen, an acute accent), letters are at least 0.85 h tall.
MARK_H, MARK_W = 0.65, 1.0
LETTER_MAX = 1.6  # taller components (touching glyphs of two lines) do not shape the centre profile
BIG = 5.0  # taller: figures, frames, drop capitals; not text
RULE = 8.0  # a component this many times longer than thick (and thinner than h / 2) is a rule
GUTTER = 1.5  # a column gap is at least this wide
CENTRE_BAND = 0.12  # each letter's centre counts over +- this
JOIN = 1.0  # a component farther than this from every line band's edge belongs to no line (specks)
BELOW_COST = 2.0  # a small mark below a line's core is this much farther from it than one as far above
SPLIT_BAND = 0.75  # a centre band taller than this share of the line pitch holds two lines
MIN_PITCH = 1.5  # no two lines' centres are closer than this
WORD_GAP = 0.35  # a gap between components wider than this separates words
PAD_V, PAD_H = 0.35, 0.5  # crop margins: line heights above and below, h left and right


@dataclass(frozen=True, eq=False)
class PageLine:
    """One text line of a page."""

    box: Box  # x0, y0, x1, y1 (exclusive) in the original page's pixel coordinates, axis-aligned
    image: np.ndarray  # uint8 grayscale crop of the line (deskewed), dark text on light, other lines' ink removed
    words: tuple[Box, ...] = field(default=())  # ink clusters split at wide gaps, original coordinates
    column: int = 0  # the column it belongs to, counted from the left


def find_lines(gray: np.ndarray) -> list[PageLine]:
    """The text lines of a uint8 grayscale page in reading order: columns left to right, lines top to bottom."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) image, got {gray.dtype} {gray.shape}")
    if min(gray.shape) < 2:
        return []
    threshold = otsu_threshold(gray)
    if int((gray <= threshold).sum()) * 2 > gray.size:  # text is the minority: this is light text on dark
        gray, threshold = 255 - gray, 254 - threshold
    ink = gray <= threshold
    if int(ink.sum()) < MIN_INK or ink.all():
        return []
    angle = skew_angle(ink)
    page = _Deskewed(gray, threshold, angle)
    comps = _Components(page.ink)
    if comps.count == 0:
        return []
    found = [(column, line_members) for column, (x0, x1) in enumerate(_columns(comps))
             for line_members in _lines(comps, (comps.text | comps.noise) & (comps.cx >= x0) & (comps.cx < x1))]
    # What a crop paints over: other lines' ink (lone pixels that joined them included: at 10 pt on screen an
    # i's dot binarises to one), rules and figures; not specks far from every line, as a crop at the right box
    # would not.
    clutter = ~comps.text & ~comps.noise
    for _, line_members in found:
        clutter |= line_members
    return [_page_line(page, comps, line_members, clutter & ~line_members, column) for column, line_members in found]


def looks_like_page(lines: list[PageLine], shape: tuple[int, ...]) -> bool:
    """Auto-detection for predict: an image is a page when at least two text lines lie wholly inside it,
    touching neither its top nor its bottom edge (a line image's cut-off neighbours touch one), and it is tall
    enough to hold them. A text line here is at least half as tall as the tallest line found: the specks of a
    noisy background that binarise into thin bands inside a single line image are no lines of text."""
    height = shape[0]
    tallest = max((line.box[3] - line.box[1] for line in lines), default=0)
    inside = [line.box[3] - line.box[1] for line in lines
              if line.box[1] > 0 and line.box[3] < height and line.box[3] - line.box[1] >= tallest / 2]
    return len(inside) >= 2 and height >= sum(sorted(inside)[-2:])


# --- binarising and deskewing ---------------------------------------------------------------------------

def otsu_threshold(gray: np.ndarray) -> int:
    """Otsu's threshold: pixels <= it are the dark class."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    weight = hist.cumsum()
    mass = (hist * levels).cumsum()
    total, total_mass = weight[-1], mass[-1]
    dark, light = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * dark - total * mass) ** 2 / (dark * light)
    between[~np.isfinite(between)] = -1.0
    return int(between.argmax())


def skew_angle(ink: np.ndarray, max_skew: float = MAX_SKEW) -> float:
    """Degrees the text lines slope down to the right (image rows grow downwards): the shear that maximises
    the variance of the horizontal projection profile, coarse then fine."""
    ys, xs = np.nonzero(ink)
    step = max(1, math.ceil(ys.size / MAX_POINTS))
    ys, xs = ys[::step].astype(np.float64), xs[::step].astype(np.float64)
    # Profiles per vertical strip: columns whose lines are offset by half a pitch blur one page-wide profile
    # at the true angle, and tilting it can look sharper; each strip's own profile is sharpest level.
    strip = np.minimum((xs * STRIPS / ink.shape[1]).astype(np.int64), STRIPS - 1)
    xs -= xs.mean()
    span = ink.shape[0] + ink.shape[1] + 2  # rows a sheared point can land on, per strip

    def sharpness(angles: np.ndarray) -> np.ndarray:
        out = np.empty(angles.size)
        for i, a in enumerate(angles):
            rows = np.round(ys - xs * math.tan(math.radians(a))).astype(np.int64)
            counts = np.bincount(strip * span + rows - rows.min())
            out[i] = float((counts.astype(np.float64) ** 2).sum())  # fixed total: the variance's order
        return out

    coarse = np.arange(-max_skew, max_skew + COARSE_STEP / 2, COARSE_STEP)
    best = float(coarse[sharpness(coarse).argmax()])
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + FINE_STEP / 2, FINE_STEP)
    scores = sharpness(fine)
    # Ties (a straight page scores alike over a few hundredths of a degree): the angle nearest zero.
    top = np.flatnonzero(scores >= scores.max() * (1 - 1e-9))
    return float(fine[top[np.abs(fine[top]).argmin()]])


class _Deskewed:
    """The page rotated so that its lines run level, with the map back to the original's coordinates."""

    def __init__(self, gray: np.ndarray, threshold: int, angle: float) -> None:
        h, w = gray.shape
        self.original = (w, h)
        self.paper = int(np.median(gray[gray > threshold])) if (gray > threshold).any() else 255
        a = math.radians(angle)
        self.cos, self.sin = math.cos(a), math.sin(a)
        if abs(math.tan(a)) * w < 1.0:  # the far edge moves under a pixel: leave the page as it is
            self.cos, self.sin = 1.0, 0.0
            self.gray, self.centre_in, self.centre_out = gray, (w / 2, h / 2), (w / 2, h / 2)
        else:
            # Output (deskewed) -> input: in = R (out - c_out) + c_in, R rotating level lines onto the slope.
            out_w = math.ceil(abs(w * self.cos) + abs(h * self.sin))
            out_h = math.ceil(abs(w * self.sin) + abs(h * self.cos))
            self.centre_in, self.centre_out = (w / 2, h / 2), (out_w / 2, out_h / 2)
            (cix, ciy), (cox, coy) = self.centre_in, self.centre_out
            data = (self.cos, -self.sin, cix - self.cos * cox + self.sin * coy,
                    self.sin, self.cos, ciy - self.sin * cox - self.cos * coy)
            rotated = Image.fromarray(gray).transform((out_w, out_h), Image.Transform.AFFINE, data,
                                                      resample=Image.Resampling.BILINEAR, fillcolor=self.paper)
            self.gray = np.asarray(rotated, dtype=np.uint8)
        self.ink = self.gray <= threshold

    def to_original(self, box: Box) -> Box:
        """A deskewed box -> the axis-aligned box of its corners on the original page, clipped to it."""
        x0, y0, x1, y1 = box
        if self.sin == 0.0:
            return box
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64) - self.centre_out
        xs = self.cos * corners[:, 0] - self.sin * corners[:, 1] + self.centre_in[0]
        ys = self.sin * corners[:, 0] + self.cos * corners[:, 1] + self.centre_in[1]
        w, h = self.original
        return (max(0, math.floor(xs.min())), max(0, math.floor(ys.min())),
                min(w, math.ceil(xs.max())), min(h, math.ceil(ys.max())))


# --- components, columns, lines -------------------------------------------------------------------------

class _Components:
    """Connected components of the ink with their boxes and roles (arrays indexed by label - 1)."""

    def __init__(self, ink: np.ndarray) -> None:
        # OpenCV's labelling (a declared dependency already, for rendering): boxes and areas in one pass.
        count, self.labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
        self.count = count - 1
        stats = stats[1:].astype(np.int64)
        self.x0, self.y0, self.w, self.h, area = stats.T
        self.x1, self.y1 = self.x0 + self.w, self.y0 + self.h
        self.cx, self.cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        sized = (area > 2) & (self.h > 1)  # single pixels and pairs say nothing about the text's size
        inner = sized & (self.y0 > 0) & (self.y1 < ink.shape[0])  # glyphs cut by the edge neither
        sized = inner if inner.any() else sized
        self.unit = float(np.median(self.h[sized])) if sized.any() else float(np.median(self.h)) if self.count else 1.0
        self.unit = max(self.unit, 2.0)
        u = self.unit
        rule = ((self.w >= RULE * self.h) & (self.h < u / 2)) | ((self.h >= RULE * self.w) & (self.w < u / 2) & (self.h > 2 * u))
        # A lone pixel is noise at any size where text is legible; every larger mark, however small (an i's dot
        # is 3x3 px at 12 pt and 300 dpi: under 0.2 h), is kept for now and dropped later only when it lies
        # far from every line (_attach_marks).
        self.noise = area <= 1
        self.text = ~rule & ~self.noise & (self.h <= BIG * u)  # what lines are made of
        self.small = self.text & (self.h < MARK_H * u) & (self.w < MARK_W * u)
        self.letter = self.text & ~self.small & (self.h <= LETTER_MAX * u)


def _columns(c: _Components) -> list[tuple[int, int]]:
    """Column x ranges, left to right: split at gaps of GUTTER h that no text component covers, when the text
    on both sides of a gap holds two lines or more."""
    sized = c.text & ~c.small
    if not sized.any():
        return [(0, c.labels.shape[1])]
    cover = np.zeros(c.labels.shape[1] + 1, dtype=np.int64)
    np.add.at(cover, c.x0[sized], 1)
    np.add.at(cover, c.x1[sized], -1)
    covered = np.cumsum(cover)[:-1] > 0
    left, right = int(c.x0[sized].min()), int(c.x1[sized].max())
    gaps = _runs(~covered[left:right])
    cuts = [left + (g0 + g1) // 2 for g0, g1 in gaps if g1 - g0 >= GUTTER * c.unit]
    while True:
        edges = [0, *cuts, c.labels.shape[1]]
        spans = list(zip(edges[:-1], edges[1:], strict=True))
        few = [len(_lines(c, c.text & (c.cx >= a) & (c.cx < b))) < 2 for a, b in spans]
        if not cuts or not any(few):
            return spans
        worst = few.index(True)  # merge the first thin column into a neighbour: drop the cut beside it
        cuts.pop(min(worst, len(cuts) - 1))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[0::2].tolist(), change[1::2].tolist(), strict=True))


def _lines(c: _Components, members: np.ndarray) -> list[np.ndarray]:
    """The lines among the components `members` (a mask), top to bottom, each a mask of its components."""
    letters = members & c.letter
    if not letters.any():
        return []
    rows = c.labels.shape[0]
    profile = np.zeros(rows + 1, dtype=np.float64)
    half = max(1.0, CENTRE_BAND * c.unit)
    top = np.clip(np.floor(c.cy[letters] - half), 0, rows).astype(np.int64)
    bottom = np.clip(np.ceil(c.cy[letters] + half), 0, rows).astype(np.int64)
    np.add.at(profile, top, c.w[letters])
    np.add.at(profile, bottom, -c.w[letters])
    profile = np.convolve(np.cumsum(profile)[:-1], np.ones(3) / 3, mode="same")
    bands = _split_bands(_runs(profile > 1e-9), profile, c.unit)
    if not bands:
        return []
    starts = np.array([b[0] for b in bands], dtype=np.float64)
    stops = np.array([b[1] for b in bands], dtype=np.float64)
    idx = np.flatnonzero(members & c.text & ~c.small)
    # Distance of each component's centre to each band (0 inside it); touching glyphs of two lines
    # (taller than a letter) go by overlap instead.
    cy = c.cy[idx][:, None]
    dist = np.maximum(starts[None, :] - cy, cy - stops[None, :]).clip(min=0)
    nearest = dist.argmin(axis=1)
    near = dist[np.arange(idx.size), nearest] <= JOIN * c.unit
    tall = c.h[idx] > LETTER_MAX * c.unit
    if tall.any():
        overlap = (np.minimum(c.y1[idx][tall, None], stops[None, :]) - np.maximum(c.y0[idx][tall, None], starts[None, :]))
        nearest[tall] = overlap.argmax(axis=1)
        near[tall] = overlap.max(axis=1) > 0
    out = []
    for k in range(len(bands)):
        mask = np.zeros(c.count, dtype=bool)
        mask[idx[(nearest == k) & near]] = True
        if (mask & c.letter).any():
            out.append(mask)
    _attach_marks(c, members & (c.small | c.noise), out)
    return out


def _attach_marks(c: _Components, marks: np.ndarray, lines: list[np.ndarray]) -> None:
    """Add each small mark (i and j dots, accents, periods, commas, apostrophes, quotes, hyphens) to the line
    it belongs to, in place: the line whose core (the median top to the median bottom of its letters) it lies
    in, or nearest to, counting a distance below a core BELOW_COST times one above it (dots, accents and quotes
    sit above their line's core, periods and commas on its baseline; none hangs well below a line). Only marks
    beside a line's letters (within JOIN h left or right) and within JOIN h of its core join it: the rest are
    specks."""
    idx = np.flatnonzero(marks)
    if idx.size == 0 or not lines:
        return
    top = np.array([np.median(c.y0[m & c.letter]) for m in lines])
    bottom = np.array([np.median(c.y1[m & c.letter]) for m in lines])
    reach = JOIN * c.unit
    left = np.array([c.x0[m & c.letter].min() for m in lines]) - reach
    right = np.array([c.x1[m & c.letter].max() for m in lines]) + reach
    cy = c.cy[idx][:, None]
    cost = np.where(cy < top, top - cy, np.where(cy > bottom, BELOW_COST * (cy - bottom), 0.0))
    beside = (c.x1[idx][:, None] > left) & (c.x0[idx][:, None] < right)
    cost = np.where(beside, cost, np.inf)
    best = cost.argmin(axis=1)
    keep = cost[np.arange(idx.size), best] <= reach
    for k, mask in enumerate(lines):
        mask[idx[keep & (best == k)]] = True


def _split_bands(bands: list[tuple[int, int]], profile: np.ndarray, unit: float) -> list[tuple[int, int]]:
    """Centre bands, with any taller than SPLIT_BAND line pitches split at their lowest profile point. Lines
    set solid are still MIN_PITCH h apart: bands shorter than that are one line whatever the pitch estimate
    (fragments of cut-off lines at an image's edges make it small)."""
    if len(bands) < 3:
        return bands
    centres = np.array([(a + b) / 2 for a, b in bands])
    pitch = float(np.median(np.diff(centres)))
    out: list[tuple[int, int]] = []
    todo = list(bands)
    while todo:
        a, b = todo.pop(0)
        if b - a > max(SPLIT_BAND * pitch, MIN_PITCH * unit) and b - a >= 4:
            inner = profile[a + 1:b - 1]
            cut = a + 1 + int(inner.argmin())
            todo[:0] = [(a, cut), (cut, b)]
        else:
            out.append((a, b))
    return out


# --- boxes and crops ------------------------------------------------------------------------------------

def _page_line(page: _Deskewed, c: _Components, members: np.ndarray, foreign: np.ndarray, column: int) -> PageLine:
    own_members = members  # lone pixels that joined the line stay in its crop but size neither box nor words
    members = members & ~c.noise
    x0, y0 = int(c.x0[members].min()), int(c.y0[members].min())
    x1, y1 = int(c.x1[members].max()), int(c.y1[members].max())
    rows, cols = page.gray.shape
    pad_v, pad_h = max(2, round(PAD_V * (y1 - y0))), max(2, round(PAD_H * c.unit))
    cy0, cy1, cx0, cx1 = max(0, y0 - pad_v), min(rows, y1 + pad_v), max(0, x0 - pad_h), min(cols, x1 + pad_h)
    crop = page.gray[cy0:cy1, cx0:cx1].copy()
    labels = c.labels[cy0:cy1, cx0:cx1]
    own = np.concatenate([[False], own_members])[labels]
    others = np.concatenate([[False], foreign])[labels]
    if others.any():  # the anti-aliased rim of another line's strokes goes too
        grown = cv2.dilate(others.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        crop[grown & ~own] = page.paper
    return PageLine(page.to_original((x0, y0, x1, y1)), crop, _words(page, c, members), column)


def _words(page: _Deskewed, c: _Components, members: np.ndarray) -> tuple[Box, ...]:
    idx = np.flatnonzero(members)
    idx = idx[np.argsort(c.x0[idx], kind="stable")]
    words: list[list[int]] = []
    right = -1
    for i in idx.tolist():
        if not words or c.x0[i] - right > WORD_GAP * c.unit:
            words.append([int(c.x0[i]), int(c.y0[i]), int(c.x1[i]), int(c.y1[i])])
        else:
            w = words[-1]
            w[:] = [min(w[0], int(c.x0[i])), min(w[1], int(c.y0[i])), max(w[2], int(c.x1[i])), max(w[3], int(c.y1[i]))]
        right = max(right, int(c.x1[i]))
    return tuple(page.to_original((w[0], w[1], w[2], w[3])) for w in words)
