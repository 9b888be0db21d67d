"""The one normalisation every word or line image gets before the model: in training (after augmentation),
evaluation and predict.

Users feed photos: light text on dark ground, grey-on-grey, margins around the word. The model only
ever sees the output of :func:`normalize`: polarity fixed so that text is ink, contrast stretched so
that background is ~0 and the darkest text ~1, and zero beyond each image's width. On clean trdg
crops (black text, white ground) it is ``1 - pixel / 255`` up to a few grey levels.

- Polarity: the background level is the median of the image's one-pixel frame (words rarely touch
  it); text lies on the side of the far tail. Dark text on light ground has its 2% darkest pixels
  much further below the background than its 2% brightest are above it.
- Stretch: ink 0 at the background (the lower of the frame median and the whole-image median, both
  pulled towards ink only by text), ink 1 at the text's far 2% tail. Quantiles come from one
  grey-level histogram per image (:func:`masked_quantiles`), not ``torch.nanquantile``, which sorts
  (slow on CPU) and rejects inputs over 16M values (a predict batch of very wide images).

For predict, :func:`crop_to_text` trims wide margins before the image is scaled to the model
height (a word in the middle of a photo would otherwise become a few tiny pixels), :func:`crop_to_line`
cuts the band of one text line out of a line image of any height (scans: specks, fragments of the lines
above and below), and :func:`prepare_image` composes both crops and the resize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

TAIL = 0.02  # share of pixels in each tail when finding the text level: below the ink share of any word crop
INK_COLUMN = 0.5  # pad_margins: a column whose darkest pixel reaches this much ink holds text
MIN_RANGE = 0.08  # ~20 grey levels: a flat (blank) image is not stretched into pure noise
CROP_TAIL = 0.002  # crop_to_text sees whole photos, where the word can be under 2% of the pixels
CROP_THRESHOLD = 0.35  # ink (after a 3x3 mean) that counts as text: one stray pixel gives 1/9
CROP_DETECT_SIZE = 1024  # larger images are box-reduced to about this size to find the text box
KEEP_V, KEEP_H = 0.35, 0.3  # margin kept above/below and left/right of the text box, in text-box heights
LOOSE_FILL = 0.2  # rows are trimmed when the text box is under this share of the image height
WIDE_H = 1.5  # columns are trimmed on a side whose margin is over this many text-box heights
# crop_to_line, in core heights (the core: the line's densest rows, its x-height or cap-height band)
LINE_INK = 0.25  # normalised ink above this is text: low, so that a hairline's grey strokes stay whole
CORE_LEVEL = 0.4  # rows with at least this share of the densest rows' ink (3-row mean) form the core
LINE_ZONE = 1.0  # the line's own ink (ascenders, i-dots, descenders, commas) lies within this of its core
LINE_SPECK = 0.3  # components lower than this, off the core, do not widen the band (specks, dots)
# The band spans at least this much above and below the core: a font's ascent and descent around its x-height,
# as trdg's canvas (the training images) has them: on its 100 fonts 0.9 and 0.5 (median), 1.1 and 0.7 (90%).
LINE_ABOVE, LINE_BELOW = 1.1, 0.7
LINE_MARGIN = 0.15  # and this much ground beyond the line's own ink (at least MIN_LINE_MARGIN px)
MIN_LINE_MARGIN = 2
MIN_LINE_ROWS = 8  # lower images are left as they are


def masked_quantiles(values: Tensor, valid: Tensor, qs: Sequence[float]) -> Tensor:
    """Per-row quantiles (nearest rank) of ``values`` (B, N) in [0, 1] over the entries where ``valid``.

    Values are binned to 256 grey levels (exact for 8-bit images, within 1/510 otherwise): one
    ``bincount`` is O(N); ``sort`` measured ~40x slower on CPU. Returns (B, len(qs)); a row
    without valid entries gives 0.
    """
    b = values.shape[0]
    levels = (values.clamp(0.0, 1.0) * 255.0).round().long().masked_fill(~valid, 256)  # 256: ignored
    offsets = torch.arange(b, device=values.device)[:, None] * 257
    counts = torch.bincount((levels + offsets).flatten(), minlength=b * 257).view(b, 257)[:, :256]
    cumulative = counts.cumsum(dim=1)
    last = (cumulative[:, -1] - 1).clamp(min=0).to(torch.float64)
    rank = (last[:, None] * torch.tensor(qs, dtype=torch.float64, device=values.device)).round().long()
    level = torch.searchsorted(cumulative, rank, right=True).clamp(max=255)  # first level holding rank
    return level.to(values.dtype) / 255.0


def valid_columns(widths: Tensor, width: int) -> Tensor:
    """(B, width) bool: column < widths[b]."""
    return torch.arange(width, device=widths.device)[None, :] < widths[:, None]


def _frame_values(images: Tensor, widths: Tensor) -> tuple[Tensor, Tensor]:
    """The one-pixel frame of each image inside its width: values (B, 2W + 2H) and their validity."""
    b, _, h, w = images.shape
    x = images[:, 0]
    last = (widths - 1).clamp(min=0).to(x.device)
    right = x.gather(2, last.view(b, 1, 1).expand(b, h, 1))[:, :, 0]
    cols = valid_columns(widths.to(x.device), w)
    values = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], right], dim=1)
    always = torch.ones(b, 2 * h, dtype=torch.bool, device=x.device)
    return values, torch.cat([cols, cols, always], dim=1)


def normalize(gray: Tensor, widths: Tensor, tail: float = TAIL) -> Tensor:
    """Brightness images -> ink images, vectorised over a padded batch.

    Args:
        gray: float (B, 1, H, W) in [0, 1], 1 = white; values beyond each width are ignored. From
            :func:`seqlab.tasks.ocr.recognizer.batching.collate`'s ``1 - pixel / 255`` images that is ``1 - images``.
        widths: int (B,) true width of each image (>= 1).
        tail: share of pixels in each tail used as the text level.

    Returns:
        float (B, 1, H, W) ink in [0, 1]: text ~1, background ~0, exactly 0 beyond each width.
    """
    b, _, h, w = gray.shape
    cols = valid_columns(widths.to(gray.device), w)
    flat = gray.reshape(b, h * w)
    valid = cols[:, None, :].expand(b, h, w).reshape(b, h * w)
    lo, med, hi = masked_quantiles(flat, valid, (tail, 0.5, 1.0 - tail)).unbind(1)
    frame, frame_valid = _frame_values(gray, widths)
    frame_med = masked_quantiles(frame, frame_valid, (0.5,))[:, 0]
    dark_text = (frame_med - lo) >= (hi - frame_med)
    # Ink before stretching is 1 - gray for dark text, gray for light text; its background level is the
    # lower of the two medians (text can only raise a median) and its text level the far tail.
    background = torch.where(dark_text, 1.0 - torch.maximum(frame_med, med), torch.minimum(frame_med, med))
    text = torch.where(dark_text, 1.0 - lo, hi)
    ink = torch.where(dark_text[:, None, None, None], 1.0 - gray, gray)
    scale = (text - background).clamp(min=MIN_RANGE)
    ink = ((ink - background[:, None, None, None]) / scale[:, None, None, None]).clamp(0.0, 1.0)
    return ink * cols[:, None, None, :].to(ink.dtype)


def crop_to_text(gray: np.ndarray) -> np.ndarray:
    """Trim wide uniform margins around a word, keeping a small margin; uint8 (H, W) in and out.

    Tight crops come back unchanged, including trdg's: their canvas spans the font's ascent and descent,
    so a word without ascenders or descenders ("ocean" in Pacifico) fills as little as 25% of the height
    with 50% above it. Rows are therefore trimmed only when the text fills under LOOSE_FILL of the height,
    columns only where a margin is over WIDE_H text heights. Stray specks survive the 3x3 mean only as
    ~1/9 ink; a speck cluster or another object in the margin stops the trim on that side (a loose crop
    is safer than a cut word). An image without detectable text is returned as is.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) image, got {gray.dtype} {gray.shape}")
    h, w = gray.shape
    step = max(1, math.ceil(max(h, w) / CROP_DETECT_SIZE))
    small = np.asarray(Image.fromarray(gray).reduce(step)) if step > 1 else gray
    x = torch.from_numpy(small.astype(np.float32) / 255.0)[None, None]
    ink = normalize(x, torch.tensor([x.shape[3]]), tail=CROP_TAIL)
    smooth = F.avg_pool2d(ink, 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    text = (smooth > CROP_THRESHOLD).numpy()
    rows, cols = np.flatnonzero(text.any(axis=1)), np.flatnonzero(text.any(axis=0))
    if rows.size == 0:
        return gray
    y0, y1 = rows[0] * step, min(h, (rows[-1] + 1) * step)
    x0, x1 = cols[0] * step, min(w, (cols[-1] + 1) * step)
    box_h = y1 - y0
    keep_v, keep_h = max(2, round(KEEP_V * box_h)), max(2, round(KEEP_H * box_h))
    top, bottom = (max(0, y0 - keep_v), min(h, y1 + keep_v)) if box_h < LOOSE_FILL * h else (0, h)
    left = x0 - keep_h if x0 > WIDE_H * box_h else 0
    right = x1 + keep_h if w - x1 > WIDE_H * box_h else w
    return gray[top:bottom, left:right]


def crop_to_line(gray: np.ndarray) -> np.ndarray:
    """The band of rows holding one text line, ink of other lines blanked; uint8 (H, W) in and out.

    A line cut from a scanned page has loose and uneven margins, specks, and bits of the lines above
    and below at its top and bottom edges; scaled as it is, the same text would reach the model at a
    different size on every page. Like ocropy's and Calamari's line normaliser, the band is found from
    the ink itself: the core is the run of dense rows around the densest one (the x-height, or the cap
    height of a line in capitals), counted over connected components that do not touch the top or
    bottom edge (fragments of neighbouring lines do). The line's ink is every component within
    LINE_ZONE core heights of the core, except edge fragments that miss the core (an i-dot a tight crop
    cut at the edge is kept); the band is its rows plus LINE_MARGIN core heights of ground, and at least
    LINE_ABOVE and LINE_BELOW core heights above and below the core. Components left out inside the band
    are painted over with the ground level. Tight crops (margins under the kept ground), images without
    ink and most trdg renders come back unchanged; the same text at any size gives the same band in core
    heights.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) image, got {gray.dtype} {gray.shape}")
    h, w = gray.shape
    if h < MIN_LINE_ROWS:
        return gray
    ink = normalize(torch.from_numpy(gray.astype(np.float32) / 255.0)[None, None], torch.tensor([w]))[0, 0]
    mask = (ink > LINE_INK).numpy().astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return gray
    top, rows = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT]
    bottom = top + rows
    edge = (top == 0) | (bottom == h)
    inner = ~edge if (~edge).any() else np.ones_like(edge)  # a tight crop: every component touches an edge
    profile = np.concatenate([[False], inner])[labels].sum(axis=1)
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")  # the peak: a dense band, not one stroke's row
    peak = int(smooth.argmax())
    sparse = np.flatnonzero(profile < CORE_LEVEL * smooth[peak])  # the band's edges: unsmoothed, sharp at any size
    c0 = int(sparse[sparse < peak].max()) + 1 if (sparse < peak).any() else 0
    c1 = int(sparse[sparse > peak].min()) if (sparse > peak).any() else h
    # To a fraction of a row: the rows just outside count by their ink relative to the core's mean row
    # (x-heights of 6-7 px made the band 15% wider or narrower by rounding alone).
    dense = max(float(profile[c0:c1].mean()), 1.0)
    top_edge = c0 - (profile[c0 - 1] / dense if c0 > 0 else 0.0)
    bottom_edge = c1 + (profile[c1] / dense if c1 < h else 0.0)
    core = bottom_edge - top_edge
    on_core = (top < c1) & (bottom > c0)
    kept = (top < c1 + LINE_ZONE * core) & (bottom > c0 - LINE_ZONE * core) & (on_core | ~edge | _dots(stats, on_core, core))
    spans = kept & (on_core | (rows >= LINE_SPECK * core))
    if not spans.any():
        return gray
    margin = max(MIN_LINE_MARGIN, round(LINE_MARGIN * core))
    y0 = max(0, min(int(top[spans].min()) - margin, round(top_edge - LINE_ABOVE * core)))
    y1 = min(h, max(int(bottom[spans].max()) + margin, round(bottom_edge + LINE_BELOW * core)))
    out = gray[y0:y1].copy()
    dropped = np.concatenate([[False], ~kept])[labels[y0:y1]]
    if dropped.any():
        out[dropped] = np.uint8(np.median(gray[mask == 0])) if (mask == 0).any() else 255
    return out


def _dots(stats: np.ndarray, on_core: np.ndarray, core: float) -> np.ndarray:
    """Components (of ``stats[1:]``) small in both directions and at most LINE_SPECK core heights above or
    below a core component they overlap in x: an i-dot a tight crop cut at the edge, not a fragment's tip."""
    left, top, width, rows = (stats[1:, k][:, None] for k in (0, 1, 2, 3))
    small = (rows < LINE_SPECK * core) & (width < LINE_SPECK * core)
    c_left, c_top, c_width, c_rows = (stats[1:, k][on_core][None, :] for k in (0, 1, 2, 3))
    overlap = (left < c_left + c_width) & (c_left < left + width)
    gap = np.maximum(c_top - (top + rows), top - (c_top + c_rows))  # rows between them, either way
    return (small & (overlap & (gap <= LINE_SPECK * core)).any(axis=1, keepdims=True))[:, 0]


def resize_to_height(gray: np.ndarray, height: int) -> np.ndarray:
    """uint8 (H, W) -> (height, W * height / H), aspect kept (Pillow's bilinear filters when shrinking)."""
    h, w = gray.shape
    if h == height:
        return gray
    new_w = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(gray).resize((new_w, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def crop_for_model(gray: np.ndarray) -> np.ndarray:
    """A user's uint8 grayscale word or line image with wide margins trimmed and its line's band cut."""
    return crop_to_line(crop_to_text(gray))


def prepare_image(gray: np.ndarray, height: int) -> np.ndarray:
    """A user's uint8 grayscale image -> the model's input geometry: cropped (crop_for_model), ``height`` rows."""
    return resize_to_height(crop_for_model(gray), height)


def pad_margins(ink: Tensor, widths: Tensor, margin: int, pad_multiple: int = 1) -> tuple[Tensor, Tensor]:
    """Give every word at least `margin` columns of empty ground left and right of its ink.

    Tightly cropped words (a detector's boxes, our reserved test split) touch the image edges, where
    trdg's renderings always have a space's width of ground: without this, a CRNN trained on the
    latter dropped or doubled the first letter of the former. Applied to every batch (training,
    evaluation, predict), after `normalize`, so the ground is exactly 0.

    Args:
        ink: float (B, 1, H, W) normalised ink, 0 beyond each width.
        widths: int (B,) true widths.
        margin: columns of ground wanted on each side.
        pad_multiple: the output width is a multiple of this.

    Returns:
        ``(ink, widths)`` with each image shifted right by its missing left margin and widened by both.
    """
    b, _, h, w = ink.shape
    widths = widths.to(ink.device)
    inked = ink[:, 0].amax(dim=1) > INK_COLUMN  # (B, W): columns holding text
    any_ink = inked.any(dim=1)
    first = torch.where(any_ink, inked.int().argmax(dim=1), 0)
    last = torch.where(any_ink, w - 1 - inked.flip(1).int().argmax(dim=1), widths - 1)
    left = torch.where(any_ink, (margin - first).clamp(min=0), 0)  # a blank image keeps its size
    right = torch.where(any_ink, (margin - (widths - 1 - last)).clamp(min=0), 0)
    new_widths = widths + left + right
    out_w = -(-int(new_widths.max()) // pad_multiple) * pad_multiple
    src = torch.arange(out_w, device=ink.device)[None, :] - left[:, None]  # (B, out_w) source column
    keep = (src >= 0) & (src < widths[:, None])
    index = src.clamp(0, w - 1)[:, None, None, :].expand(b, 1, h, out_w)
    out = torch.gather(ink, 3, index) * keep[:, None, None, :].to(ink.dtype)
    return out, new_widths
