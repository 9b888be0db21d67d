"""Page reading scored on transcribed sample pages: the `ocr-pages` stage (``seqlab read-pages``).

A samples folder holds page images (``NAME.png``, ``.jpg``, ``.tif``) beside ``NAME.gt.txt``: the page's
text, one line per text line in reading order; blank lines (between paragraphs) are ignored. An optional
``NAME.boxes.tsv`` gives each text line's box (``x0 y0 x1 y1`` per row, the .gt.txt's order) for the crops
comparison. Each page is read as predict --page reads it, and scored:

- ``cer`` / ``cer_nocase``: the page's text (lines joined by newlines) against the transcription, edit
  distance over the transcription's length, case-sensitive and not;
- ``lines_found`` / ``lines_expected``, and ``in_order``: every transcribed line's best-matching read line
  comes after the previous one's;
- with boxes, ``crops_cer``: the same lines read one by one from crops at the known boxes (each padded by
  CROP_PAD of its height, as a user would cut it), and ``page_vs_crops`` = cer / crops_cer;
- timing (on this busy 2-core machine the figures are rough): the first page stacked on itself until it
  holds at least TIMING_LINES lines, read REPEATS times, the fastest kept: lines/s and the share of the
  time spent finding lines.

Outputs: ``eval.json`` (per page and the totals), ``lines.csv`` (one row per read line: its box, text and
best-matching transcribed line) and ``hocr/NAME.hocr``.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein

from seqlab.core.errors import SeqlabError
from seqlab.core.storage import write_json, write_text
from seqlab.tasks.ocr.documents.hocr import to_hocr
from seqlab.tasks.ocr.documents.pages import Box
from seqlab.tasks.ocr.documents.reading import ReadTimes, Recognizer, read_images
from seqlab.tasks.ocr.images import ImageReadError, fit_image, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
CROP_PAD = 0.2  # known-box crops: this share of the box height added on every side
TIMING_LINES = 30
REPEATS = 3


@dataclass(frozen=True)
class SamplePage:
    image: Path
    truth: list[str]  # text lines in reading order
    boxes: list[Box] | None  # the lines' known boxes, when given


def sample_pages(folder: Path) -> list[SamplePage]:
    """The transcribed pages of `folder`, by name; SeqlabError when there are none or a box file is off."""
    if not folder.is_dir():
        raise SeqlabError(f"{folder}: no such samples folder (ocr.pages.samples)")
    pages = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        gt = image.with_suffix(".gt.txt")
        if not gt.is_file():
            continue
        truth = [line.strip() for line in gt.read_text(encoding="utf-8").splitlines() if line.strip()]
        boxes_file = image.with_suffix(".boxes.tsv")
        boxes = None
        if boxes_file.is_file():
            rows = [r.split() for r in boxes_file.read_text(encoding="utf-8").splitlines() if r.strip()]
            if len(rows) != len(truth) or any(len(r) != 4 for r in rows):
                raise SeqlabError(f"{boxes_file}: expected {len(truth)} rows of x0 y0 x1 y1, one per line of {gt.name}")
            boxes = [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
        pages.append(SamplePage(image, truth, boxes))
    if not pages:
        raise SeqlabError(f"{folder}: no page image with a .gt.txt beside it")
    return pages


def page_cer(pred: list[str], truth: list[str], *, nocase: bool = False) -> float:
    """Edit distance of the page texts (lines joined by newlines) over the transcription's length."""
    a, b = "\n".join(pred), "\n".join(truth)
    if nocase:
        a, b = a.lower(), b.lower()
    return Levenshtein.distance(a, b) / max(1, len(b))


def best_matches(pred: list[str], truth: list[str]) -> list[int]:
    """For each transcribed line, the index of the read line nearest it (-1 when nothing was read)."""
    if not pred:
        return [-1] * len(truth)
    return [int(np.argmin([Levenshtein.normalized_distance(p, t) for p in pred])) for t in truth]


def evaluate_pages(recognize: Recognizer, height: int, folder: Path, out_dir: Path) -> dict[str, Any]:
    """Read and score every sample page; write eval.json, lines.csv and hocr/ under `out_dir`."""
    pages = sample_pages(folder)
    results: dict[str, Any] = {}
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["page", "line", "x0", "y0", "x1", "y1", "text", "truth", "cer"])
    for sample in pages:
        reading = read_images(recognize, [str(sample.image)], height, page=True)[0]
        if reading.error is not None:
            raise SeqlabError(f"{sample.image}: {reading.error}")
        pred = [line.text for line in reading.lines]
        matches = best_matches(pred, sample.truth)
        order = [m for m in matches if m >= 0]
        result: dict[str, Any] = {
            "cer": page_cer(pred, sample.truth), "cer_nocase": page_cer(pred, sample.truth, nocase=True),
            "lines_found": len(pred), "lines_expected": len(sample.truth),
            "in_order": len(order) == len(sample.truth) and all(a < b for a, b in zip(order, order[1:], strict=False)),
        }
        if sample.boxes is not None:
            crops = _read_crops(recognize, height, read_image(sample.image), sample.boxes)
            result["crops_cer"] = page_cer(crops, sample.truth)
            result["page_vs_crops"] = result["cer"] / result["crops_cer"] if result["crops_cer"] else (
                0.0 if result["cer"] == 0 else math.inf)
        results[sample.image.stem] = result
        truth_of = {m: sample.truth[k] for k, m in enumerate(matches) if m >= 0}
        for n, line in enumerate(reading.lines):
            truth = truth_of.get(n, "")
            writer.writerow([sample.image.stem, n + 1, *line.box, line.text, truth,
                             round(Levenshtein.distance(line.text, truth) / max(1, len(truth)), 4)])
        write_text(out_dir / "hocr" / f"{sample.image.stem}.hocr", to_hocr([reading]))
    total_chars = sum(len("\n".join(p.truth)) for p in pages)
    summary = {
        "pages": len(pages),
        "cer": sum(results[p.image.stem]["cer"] * len("\n".join(p.truth)) for p in pages) / max(1, total_chars),
        "cer_nocase": sum(results[p.image.stem]["cer_nocase"] * len("\n".join(p.truth)) for p in pages) / max(1, total_chars),
        "lines_found": sum(r["lines_found"] for r in results.values()),
        "lines_expected": sum(r["lines_expected"] for r in results.values()),
        "all_in_order": all(r["in_order"] for r in results.values()),
    }
    # eval.json: the figures only (identical between runs, for `dvc metrics show`); pages.json adds each page's
    # figures and the timing, which moves with the machine and its load.
    write_json(out_dir / "eval.json", summary)
    summary = {**summary, "timing": time_page(recognize, height, pages[0].image), "per_page": results}
    write_json(out_dir / "pages.json", summary)
    write_text(out_dir / "lines.csv", table.getvalue())
    return summary


def _read_crops(recognize: Recognizer, height: int, gray: np.ndarray, boxes: list[Box]) -> list[str]:
    images = []
    for x0, y0, x1, y1 in boxes:
        pad = round(CROP_PAD * (y1 - y0))
        crop = gray[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
        try:
            images.append(fit_image(crop, height))
        except ImageReadError as exc:
            raise SeqlabError(f"known box {(x0, y0, x1, y1)}: {exc}") from None
    return recognize(images)


def time_page(recognize: Recognizer, height: int, image: Path) -> dict[str, Any]:
    """Read `image` stacked on itself to at least TIMING_LINES lines, REPEATS times; the fastest run's
    seconds, lines/s and the share of time spent finding lines."""
    gray = read_image(image)
    once = len(read_images(recognize, [str(image)], height, page=True)[0].lines)
    copies = max(1, math.ceil(TIMING_LINES / max(1, once)))
    with tempfile.TemporaryDirectory(prefix="seqlab-pages-") as tmp:
        tall = Path(tmp) / "tall.png"
        Image.fromarray(np.vstack([gray] * copies)).save(tall)
        best: tuple[float, ReadTimes, int] | None = None
        for _ in range(REPEATS):
            times = ReadTimes()
            lines = len(read_images(recognize, [str(tall)], height, page=True, times=times)[0].lines)
            total = times.find_lines + times.recognize
            if best is None or total < best[0]:
                best = (total, times, lines)
    assert best is not None
    total, times, lines = best
    return {"page": f"{image.name} x{copies}", "lines": lines, "seconds": round(total, 3),
            "lines_per_s": round(lines / total, 1) if total else 0.0,
            "find_lines_share": round(times.find_lines / total, 3) if total else 0.0,
            "note": "fastest of 3 reads on a shared 2-core machine: rough"}
