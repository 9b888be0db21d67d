"""Reading word and line images for predict: any size, mode and common format, or one clear error.

Every image becomes uint8 grayscale at the model's height with its aspect ratio kept (:func:`fit_image`),
after wide margins around the word are trimmed (photos; normalize.crop_to_text) and the band of its
text line is cut (scans of any line height; normalize.crop_to_line). Evaluation brings test images that
are not at the model's height through the same function. Polarity and contrast are left alone: every
batch is normalised the same way in training, evaluation and predict. 1-bit, grey, palette and RGB(A)
files are read; transparent pixels are composited on white, 16-bit images are scaled to 8 bits,
multi-frame files (GIF, APNG) use their first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.normalize import crop_for_model, resize_to_height

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
    """Load `path` as a grayscale word or line image of `height` rows; ImageReadError says what is wrong."""
    return fit_image(read_image(path), height)


def read_image(path: str | Path) -> np.ndarray:
    """`path` as uint8 grayscale (H, W) at its own resolution (see the module docstring for the modes read);
    ImageReadError says what is wrong."""
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
    return gray


def fit_image(gray: np.ndarray, height: int) -> np.ndarray:
    """A uint8 grayscale (H, W) word or line image -> the model's input: cropped (normalize.crop_for_model),
    `height` rows, at least MIN_WIDTH columns; ImageReadError if it is too small or would be too wide."""
    if gray.shape[0] < 2 or gray.shape[1] < 1:
        raise ImageReadError(f"image of {gray.shape[1]}x{gray.shape[0]} pixels is too small to hold a word")
    # Photos: wide margins would shrink the word at the model's height; scans: loose, speckled line crops.
    gray = crop_for_model(gray)
    width = max(1, round(gray.shape[1] * height / gray.shape[0]))
    if width > MAX_WIDTH:  # checked before resizing: a 1e6 x 2 image would need gigabytes at the model height
        raise ImageReadError(f"image is {width} px wide at height {height}; the limit is {MAX_WIDTH}")
    out = resize_to_height(gray, height)
    if out.shape[1] < MIN_WIDTH:
        out = np.pad(out, ((0, 0), (0, MIN_WIDTH - out.shape[1])), mode="edge")
    return out


def fit_split(split: OcrSplit, height: int) -> OcrSplit:
    """`split` as a model of `height` rows reads it: unchanged if every image has that height, else every
    image through :func:`fit_image`, as predict would read it (native-height splits: the scans)."""
    if all(im.shape[0] == height for im in split.images):
        return split
    images = [fit_image(im, height) for im in split.images]
    return OcrSplit(images, split.texts, split.labels, np.array([im.shape[1] for im in images], dtype=np.int64),
                    split.fonts, split.kinds)
