"""Test figures for any OCR recognizer, computed one way: the CTC models and Tesseract get the same report.

A recognizer is anything with ``read(images) -> texts``. :func:`evaluate_recognizer` times it on each
test split and returns its figures (CER, case-insensitive CER, word accuracy, 1-NED, words/s, threads),
the per-length, per-line-length and per-kind tables and the prediction grid (test images with prediction
and truth, errors first) as a figure to draw; the caller decides where files go (seqlab.core.results).

Text kinds (seqlab.tasks.ocr.data, `kinds`) tell dictionary words, numbers, letter-digit mixes and random
strings apart, and lines of joined words from prose: a model that reads dictionary words well but random
strings badly leans on a language prior, which the split's one CER hides.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from seqlab.core.storage import atomic_path
from seqlab.core.task import Evaluation, Figure, Table
from seqlab.tasks.ocr.data import LINE_SPLITS, OcrSplit
from seqlab.tasks.ocr.recognizer.metrics import by_words, cer, summarize, word_accuracy

WORD_GRID_CELLS, LINE_GRID_CELLS = 60, 30  # a line cell is twice a word cell's width: the same area
# eval.json's splits (seqlab.core.results): the training fonts' words and the reserved families' words, the
# README's "in range" and "beyond training" columns. The other splits' CER is in splits.json.
HEADLINE_METRIC, HEADLINE_SPLITS = "test.cer", ("test", "test_reserved")
GRIDS = {"test": "predictions.png", "test_reserved_degraded": "predictions_reserved_degraded.png",
         "test_reserved_lines": "predictions_reserved_lines.png", "test_reserved_scans": "predictions_reserved_scans.png"}


class Recognizer(Protocol):
    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        """The text of each uint8 grayscale (H, W) word or line image (dark on light), in the charset's labels."""
        ...


def evaluate_recognizer(recognizer: Recognizer, splits: Mapping[str, OcrSplit], name: str,
                        grids: Mapping[str, str] = GRIDS, line_splits: Collection[str] = LINE_SPLITS) -> Evaluation:
    """Read every split and score it: figures per split, {"by_length": rows, "by_line_words": rows, "by_kind":
    rows} (by_line_words for line splits, by number of words per line; by_kind for splits that record their
    text kinds), {"predictions.png": grid, ...}.

    ``words_per_s`` is the wall-clock reading rate on ``threads`` = torch's thread count, the cores both
    our models and Tesseract are given. Prediction grids (errors first) show the splits in `grids` (split ->
    file name); `line_splits` hold lines (the test splits' names by default; a user's ground truth: its own).
    """
    metrics: dict[str, Any] = {}
    rows: Table = []
    line_rows: Table = []
    kind_rows: Table = []
    figures: dict[str, Figure] = {}
    for split, data in splits.items():
        t0 = time.perf_counter()
        preds = recognizer.read(data.images)
        seconds = time.perf_counter() - t0
        s = summarize(preds, data.texts)
        by_len = s.pop("by_length")
        metrics[split] = {**s, "words_per_s": len(data) / seconds, "threads": torch.get_num_threads()}
        rows += [{"length": int(k), "split": split, **v} for k, v in by_len.items()]
        if split in line_splits:
            line_rows += [{"words": k, "split": split, **v} for k, v in by_words(preds, data.texts).items()]
        if data.kinds:
            kind_rows += [{"split": split, **r} for r in by_kind(preds, data.texts, data.kinds)]
        if split in grids:
            lines = split in line_splits
            figures[grids[split]] = partial(prediction_grid, images=data.images, preds=preds, truths=data.texts,
                                            title=f"{name} on {split}: errors first",
                                            columns=2 if lines else 4, cell_width=480 if lines else 240,
                                            limit=LINE_GRID_CELLS if lines else WORD_GRID_CELLS)
    tables = {"by_length": rows}
    if line_rows:
        tables["by_line_words"] = line_rows
    if kind_rows:
        tables["by_kind"] = kind_rows
    return Evaluation(metrics, tables, figures)


def by_kind(preds: Sequence[str], truths: Sequence[str], kinds: Sequence[str]) -> Table:
    """One row per text kind, by name: kind, count, cer, cer_nocase, word_accuracy (whole images read exactly)."""
    groups: dict[str, list[int]] = {}
    for i, kind in enumerate(kinds):
        groups.setdefault(kind, []).append(i)
    rows: Table = []
    for kind in sorted(groups):
        p, t = [preds[i] for i in groups[kind]], [truths[i] for i in groups[kind]]
        rows.append({"kind": kind, "count": len(t), "cer": cer(p, t),
                     "cer_nocase": cer([x.lower() for x in p], [x.lower() for x in t]), "word_accuracy": word_accuracy(p, t)})
    return rows


def prediction_grid(path: str | Path, images: Sequence[np.ndarray], preds: Sequence[str], truths: Sequence[str],
                    title: str, limit: int = WORD_GRID_CELLS, columns: int = 4, cell_width: int = 240) -> None:
    """Write a PNG grid: each cell shows an image, then 'pred' (green if right, red if wrong) and 'truth'."""
    order = sorted(range(len(images)), key=lambda i: (preds[i] == truths[i], i))[:limit]
    font = ImageFont.load_default(size=13)
    img_h = max((images[i].shape[0] for i in order), default=32)
    cell_h = img_h + 36
    rows = max(1, -(-len(order) // columns))
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_h + 28), "white")
    draw = ImageDraw.Draw(sheet)
    errors = sum(p != t for p, t in zip(preds, truths))
    draw.text((6, 6), f"{title} ({errors} errors in {len(truths)})", fill="black", font=font)
    for n, i in enumerate(order):
        x, y = (n % columns) * cell_width + 4, (n // columns) * cell_h + 28
        im = Image.fromarray(images[i])
        if im.width > cell_width - 8:
            im = im.resize((cell_width - 8, im.height))
        sheet.paste(im.convert("RGB"), (x, y))
        ok = preds[i] == truths[i]
        draw.text((x, y + img_h + 2), f"pred: {preds[i]}", fill=(0, 128, 0) if ok else (200, 0, 0), font=font)
        draw.text((x, y + img_h + 18), f"true: {truths[i]}", fill=(60, 60, 60), font=font)
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
