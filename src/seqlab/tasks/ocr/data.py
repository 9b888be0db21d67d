"""The OCR data format: written by the generate stage and read by everything else, here and only here.

``data/ocr/`` holds one ``<split>.npz`` per split rendered with trdg (train, val, test, test_heldout_fonts,
test_lines) and ``meta.json``; ``data/ocr-reserved/`` holds the test splits drawn with plain Pillow in the
font families reserved for evaluation (test_reserved, test_reserved_degraded and the same as lines,
test_reserved_lines, test_reserved_lines_degraded, and test_reserved_scans: those lines as binarised scans
at their native heights), in the same format. Test splits hold either single words (WORD_SPLITS) or lines
of several words (LINE_SPLITS); train and val may mix both.

``<split>.npz`` is a :func:`seqlab.core.storage.save_arrays` archive (a zip of ``.npy`` members in name order,
fixed timestamps, so the same images give the same bytes) of N word or line images:

    ======  ==============  ===================================================================
    name    dtype, shape    contents
    ======  ==============  ===================================================================
    fonts   <U, (N,)        font file each image was drawn with
    height  int32, ()       height H of every image, in pixels (fixed-height splits)
    heights int32, (N,)     height H_i of each image, instead of ``height`` (native-height splits)
    kinds   <U, (N,)        what each text is: a word's kind (dictionary, number, mixed, random) or a
                            line's (words: joined words, prose: a window of the text corpus)
    pixels  uint8, (sum HW) every image's rows, row-major (H_i, W_i), concatenated in image order
    texts   <U, (N,)        label of each image, already normalized to the charset
    widths  int32, (N,)     width W_i of each image
    ======  ==============  ===================================================================

``kinds`` is absent from files written before it existed (and by writers that pass none); such a split
loads with empty ``kinds``, and evaluation then has no per-kind figures for it.

A split holds exactly one of ``height`` and ``heights``. Native-height images are brought to the model's
height when read (seqlab.tasks.ocr.images.fit_image, what predict does to any image).

Images are grayscale; trdg's are dark text on a light background, the degraded reserved split also has
light text on dark grounds (every image is normalised before a model sees it). ``meta.json`` is
``{"charset": <the charset's characters in class order>, "height": H}``: what a model needs to
read these images, copied into every checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.core import paths
from seqlab.core.errors import DataError
from seqlab.core.storage import load_arrays, save_arrays, write_json
from seqlab.tasks.ocr.charset import Charset

DATA_DIR = "ocr"  # data/ocr: the trdg splits
RESERVED_DIR = "ocr-reserved"  # data/ocr-reserved: the Pillow splits in the reserved families
WORD_SPLITS = ("test", "test_heldout_fonts", "test_reserved", "test_reserved_degraded")
LINE_SPLITS = ("test_lines", "test_reserved_lines", "test_reserved_lines_degraded", "test_reserved_scans")
RESERVED_SPLITS = ("test_reserved", "test_reserved_degraded", "test_reserved_lines", "test_reserved_lines_degraded",
                   "test_reserved_scans")
TEST_SPLITS = WORD_SPLITS + LINE_SPLITS


def split_path(split: str) -> Path:
    """Where a split lives: data/ocr-reserved/ for the reserved ones, data/ocr/ for the rest."""
    return paths.data_dir(RESERVED_DIR if split in RESERVED_SPLITS else DATA_DIR) / f"{split}.npz"


@dataclass
class OcrSplit:
    """One split in memory; `labels` are the texts encoded as class indices (charset index + 1)."""

    images: list[np.ndarray]  # uint8 (H, W_i) or, in native-height splits, (H_i, W_i); dark text on light ground
    texts: list[str]
    labels: list[list[int]]
    widths: np.ndarray  # int64 (N,)
    fonts: list[str]
    kinds: list[str] = field(default_factory=list)  # one per image, or empty when the file has none

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def unlabelled(cls, images: Sequence[np.ndarray]) -> OcrSplit:
        """Images to read, with empty texts and labels (predict, or any recognizer's input)."""
        n = len(images)
        return cls(list(images), [""] * n, [[] for _ in range(n)], np.array([im.shape[1] for im in images], dtype=np.int64),
                   [""] * n)


def save_split(path: Path, images: Sequence[np.ndarray], texts: Sequence[str], fonts: Sequence[str],
               height: int | None, kinds: Sequence[str] = ()) -> None:
    """Write one split in the format above: every image `height` rows, or (None) each at its own height;
    `kinds` is written when given (one per image)."""
    if kinds and len(kinds) != len(texts):
        raise ValueError(f"{path}: {len(kinds)} kinds for {len(texts)} images")
    if height is not None and any(im.shape[0] != height for im in images):
        raise ValueError(f"every image of a fixed-height split must have {height} rows")
    rows = {"height": np.array(height, dtype=np.int32)} if height is not None else \
        {"heights": np.array([im.shape[0] for im in images], dtype=np.int32)}
    save_arrays(
        path,
        pixels=np.concatenate([im.ravel() for im in images]),
        widths=np.array([im.shape[1] for im in images], dtype=np.int32),
        texts=np.array(texts, dtype=str),
        fonts=np.array(fonts, dtype=str),
        **({"kinds": np.array(kinds, dtype=str)} if kinds else {}),
        **rows,
    )


def load_split(path: Path, charset: Charset) -> OcrSplit:
    """Read one split; a damaged file or a label outside `charset` raises DataError."""
    a = load_arrays(path)
    widths = a["widths"].astype(np.int64)
    heights = a["heights"].astype(np.int64) if "heights" in a else np.full_like(widths, int(a["height"]))
    ends = np.cumsum(widths * heights)
    if len(ends) == 0 or ends[-1] != a["pixels"].size or len(a["texts"]) != len(widths) or len(heights) != len(widths):
        raise DataError(f"{path}: pixel count does not match the recorded widths; regenerate it with dvc repro -f")
    flat = np.split(a["pixels"], ends[:-1])
    images = [f.reshape(h, w) for f, h, w in zip(flat, heights, widths)]
    texts = [str(t) for t in a["texts"]]
    bad = next((t for t in texts if not charset.accepts(t)), None)
    if bad is not None:
        raise DataError(f"{path}: label {bad!r} has characters outside the charset; regenerate the data")
    kinds = [str(k) for k in a["kinds"]] if "kinds" in a else []
    if kinds and len(kinds) != len(texts):
        raise DataError(f"{path}: {len(kinds)} kinds for {len(texts)} images; regenerate it with dvc repro -f")
    return OcrSplit(images, texts, [charset.encode(t) for t in texts], widths, [str(f) for f in a["fonts"]], kinds)


def load_test_splits(charset: Charset) -> dict[str, OcrSplit]:
    """Every test split a recognizer is scored on, in TEST_SPLITS order."""
    return {split: load_split(split_path(split), charset) for split in TEST_SPLITS}


def write_meta(data_dir: Path, charset: Charset, height: int) -> None:
    write_json(data_dir / "meta.json", {"charset": charset.chars, "height": height})


def read_meta(data_dir: Path) -> dict[str, Any]:
    """``meta.json`` as written by :func:`write_meta`; missing or damaged raises DataError."""
    path = data_dir / "meta.json"
    if not path.is_file():
        raise DataError(f"{path} is missing (run the generate stage first: dvc repro)")
    try:
        meta = json.loads(path.read_text())
        Charset.from_name(meta["charset"])
        int(meta["height"])
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path} is corrupt ({type(exc).__name__}: {exc}); regenerate it with dvc repro -f ocr-generate") from None
    return meta
