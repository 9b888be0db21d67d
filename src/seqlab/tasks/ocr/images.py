"""Reading word images from files for predict: any size, mode and common format, or one clear error.

Every image becomes uint8 grayscale at the model's height with its aspect ratio kept, after wide
margins around the word are trimmed (photos; see normalize.crop_to_text). Polarity and contrast are
left alone: every batch is normalised the same way in training, evaluation and predict. Transparent
pixels are composited on white, 16-bit images are scaled to 8 bits, multi-frame files (GIF, APNG) use
their first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seqlab.tasks.ocr.normalize import crop_to_text, resize_to_height

MAX_WIDTH = 16384  # after rescaling to the model height; wider inputs are rejected, not truncated
MIN_WIDTH = 16  # narrower images are widened (edge columns repeated) so every model has output steps


class ImageReadError(Exception):
    """A file that is not a usable image; the message names the problem in one line."""


def to_grayscale(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> uint8 (H, W) grayscale on a white background."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def load_word_image(path: str | Path, height: int) -> np.ndarray:
    """Load `path` as a grayscale word image of `height` rows; ImageReadError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError("is a directory, not an image file")
    if not path.exists():
        raise ImageReadError("no such file")
    if path.stat().st_size == 0:
        raise ImageReadError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as file:
                file.seek(0)  # first frame of animations
                img = ImageOps.exif_transpose(file)
                img.load()
                gray = to_grayscale(img)
    except UnidentifiedImageError:
        raise ImageReadError("not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError("image is too large to decode safely") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data fails in many ways (OSError, zlib.error...)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"cannot decode image ({detail})") from None
    if gray.shape[0] < 2 or gray.shape[1] < 1:
        raise ImageReadError(f"image of {gray.shape[1]}x{gray.shape[0]} pixels is too small to hold a word")
    gray = crop_to_text(gray)  # photos: wide margins around the word would shrink it at the model's height
    width = max(1, round(gray.shape[1] * height / gray.shape[0]))
    if width > MAX_WIDTH:  # checked before resizing: a 1e6 x 2 image would need gigabytes at the model height
        raise ImageReadError(f"image is {width} px wide at height {height}; the limit is {MAX_WIDTH}")
    out = resize_to_height(gray, height)
    if out.shape[1] < MIN_WIDTH:
        out = np.pad(out, ((0, 0), (0, MIN_WIDTH - out.shape[1])), mode="edge")
    return out
