"""Reading a batch of images, line images and pages alike, with one recognizer call.

Each input is decoded once. An image is read as a **page** when the caller says so (``page=True``,
predict's ``--page``) or, with ``page=None``, when :func:`pages.looks_like_page` says so: find_lines finds
at least two lines that touch neither its top nor its bottom edge. Every other image is read as one line
exactly as before pages existed (images.fit_image; ``page=False`` skips the line finder altogether). The
lines of every page and the line images all go to the recognizer together, in one call, so a page of
30 lines costs one batched forward pass per width bucket, not 30.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from seqlab.tasks.ocr.documents.pages import Box, PageLine, find_lines, looks_like_page
from seqlab.tasks.ocr.images import ImageReadError, fit_image, read_image

Recognizer = Callable[[Sequence[np.ndarray]], list[str]]  # model-height uint8 images -> texts (CtcReader.read)


@dataclass(frozen=True)
class ReadLine:
    box: Box  # on the input image; a line image's whole extent
    text: str
    words: tuple[Box, ...] = ()  # candidate word boxes (pages.PageLine.words); none for a line image
    column: int = 0  # pages.PageLine.column


@dataclass(frozen=True)
class Reading:
    """What one input gave: its lines in reading order, or the one-line reason it could not be read."""

    path: str
    size: tuple[int, int]  # width, height of the input image (0, 0 when it could not be read)
    lines: tuple[ReadLine, ...]
    page: bool  # read as a page (its lines found by find_lines) rather than as one line image
    error: str | None = None

    @property
    def text(self) -> str:
        """The lines joined by newlines (a line image's one line)."""
        return "\n".join(line.text for line in self.lines)


@dataclass
class ReadTimes:
    """Seconds spent finding lines (pages only) and recognising (all inputs) in one read_images call."""

    find_lines: float = 0.0
    recognize: float = 0.0


def read_images(recognize: Recognizer, paths: Iterable[str], height: int, page: bool | None = None,
                times: ReadTimes | None = None) -> list[Reading]:
    """Read every input with one `recognize` call; an unreadable file gets an error and the rest are read."""
    grays: dict[int, np.ndarray] = {}
    found: dict[int, list[PageLine]] = {}
    images: list[np.ndarray] = []  # model-height line images, all inputs together
    owners: list[tuple[int, PageLine | None]] = []  # (input index, page line or None for a line image)
    errors: dict[int, str] = {}
    times = times if times is not None else ReadTimes()
    paths = list(paths)
    for i, path in enumerate(paths):
        try:
            gray = read_image(path)
            grays[i] = gray
            lines = None
            if page is not False:
                start = time.perf_counter()
                lines = find_lines(gray)
                times.find_lines += time.perf_counter() - start
            if lines is not None and (page or looks_like_page(lines, gray.shape)):
                found[i] = lines
                for line in lines:
                    images.append(_fit_line(line.image, height))
                    owners.append((i, line))
            else:
                images.append(fit_image(gray, height))
                owners.append((i, None))
        except ImageReadError as exc:
            errors[i] = str(exc)
    start = time.perf_counter()
    texts = recognize(images) if images else []
    times.recognize += time.perf_counter() - start
    read: dict[int, list[ReadLine]] = {i: [] for i in grays}
    for (i, found_line), text in zip(owners, texts, strict=True):
        if found_line is None:
            h, w = grays[i].shape
            read[i].append(ReadLine((0, 0, w, h), text))
        else:
            read[i].append(ReadLine(found_line.box, text, found_line.words, found_line.column))
    out = []
    for i, path in enumerate(paths):
        if i in errors:
            out.append(Reading(path, (0, 0), (), False, errors[i]))
        else:
            h, w = grays[i].shape
            out.append(Reading(path, (w, h), tuple(read[i]), i in found))
    return out


def _fit_line(crop: np.ndarray, height: int) -> np.ndarray:
    """A page line's crop as the model reads it; a crop fit_image refuses (a line too long for the model's
    width limit) is read as a blank image rather than failing the page."""
    try:
        return fit_image(crop, height)
    except ImageReadError:
        return np.full((height, height), 255, dtype=np.uint8)
