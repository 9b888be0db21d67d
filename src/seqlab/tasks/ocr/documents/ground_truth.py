"""Ground-truth folders as a data source (minimal stand-in: `NAME.png` beside `NAME.gt.txt` only).

The full reader (TSV, PAGE XML, pages without line coordinates, every kind of bad ground truth named) replaces
this module at merge; it keeps this interface: :class:`GtLine`, :class:`GroundTruthError`,
:func:`read_ground_truth` and :func:`gt_split`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seqlab.core.errors import SeqlabError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.images import to_grayscale

GT_SUFFIX = ".gt.txt"


@dataclass(frozen=True)
class GtLine:
    name: str  # the file stem
    image: np.ndarray  # uint8 grayscale (H, W) line crop at its original resolution
    text: str


class GroundTruthError(SeqlabError):
    """Ground truth that cannot be used as it is; the message names the files."""


def read_ground_truth(source: str | Path, charset: Charset | None = None, *, drop_bad: bool = False,
                      echo: Callable[[str], None] = print) -> list[GtLine]:
    """The lines of a folder of `NAME.png` + `NAME.gt.txt` pairs, in name order. A missing partner, an
    unreadable image, an empty transcription or characters outside `charset` (None: no check) raise
    GroundTruthError naming them, unless `drop_bad`: then such lines are left out and their count echoed."""
    folder = Path(source)
    if not folder.is_dir():
        raise GroundTruthError(f"{folder}: no such ground-truth folder")
    images = {p.stem: p for p in folder.glob("*.png")}
    texts = {p.name[:-len(GT_SUFFIX)]: p for p in folder.glob(f"*{GT_SUFFIX}")}
    problems: list[str] = []
    lines: list[GtLine] = []
    for name in sorted(images.keys() | texts.keys()):
        if name not in texts or name not in images:
            problems.append(f"{folder / name}: {'image' if name in images else 'transcription'} without its partner")
            continue
        text = " ".join(texts[name].read_text(encoding="utf-8").split())
        if not text:
            problems.append(f"{texts[name]}: empty transcription")
            continue
        try:
            with Image.open(images[name]) as img:
                gray = to_grayscale(img)
        except Exception as exc:  # noqa: BLE001 - corrupt image files fail in many ways
            problems.append(f"{images[name]}: unreadable image ({type(exc).__name__})")
            continue
        if charset is not None and not charset.accepts(text):
            bad = [ch for ch in charset.normalize(text) if not charset.accepts(ch)]
            problems.append(f"{texts[name]}: characters outside the charset: {''.join(sorted(set(bad)))}")
            continue
        lines.append(GtLine(name, gray, text))
    if problems and not drop_bad:
        raise GroundTruthError(f"{len(problems)} bad ground-truth lines in {folder}, first: {problems[0]} "
                               "(--drop-bad leaves them out)")
    if problems:
        echo(f"dropped {len(problems)} bad ground-truth lines of {folder}")
    if not lines:
        raise GroundTruthError(f"{folder}: no usable ground-truth lines")
    return lines


def gt_split(lines: Sequence[GtLine]) -> OcrSplit:
    """The lines as a native-height split (data.py's `heights` form), kinds "gt". Labels are left empty: a
    caller encodes the texts with its model's charset."""
    images = [line.image for line in lines]
    return OcrSplit(images, [line.text for line in lines], [[] for _ in lines],
                    np.array([im.shape[1] for im in images], dtype=np.int64), [line.name for line in lines],
                    ["gt"] * len(lines))
