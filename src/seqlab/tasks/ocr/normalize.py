"""The one normalisation every word image gets before the model: in training (after augmentation),
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
height (a word in the middle of a photo would otherwise become a few tiny pixels), and
:func:`prepare_image` composes crop and resize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
            :func:`seqlab.tasks.ocr.batching.collate`'s ``1 - pixel / 255`` images that is ``1 - images``.
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


def resize_to_height(gray: np.ndarray, height: int) -> np.ndarray:
    """uint8 (H, W) -> (height, W * height / H), aspect kept (Pillow's bilinear filters when shrinking)."""
    h, w = gray.shape
    if h == height:
        return gray
    new_w = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(gray).resize((new_w, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def prepare_image(gray: np.ndarray, height: int) -> np.ndarray:
    """A user's uint8 grayscale image -> the model's input geometry: margins trimmed, ``height`` rows."""
    return resize_to_height(crop_to_text(gray), height)


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
