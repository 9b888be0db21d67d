"""Scoring engines on a user's own lines (`seqlab evaluate ocr --gt DIR`): a trained model and Tesseract read the
same ground-truth lines and are scored by the one scorer every OCR figure comes from
(seqlab.tasks.ocr.recognizer.report.evaluate_recognizer: CER, case-insensitive CER, WER, lines/s).

Each engine gets the lines as it gets any image: the model through the normaliser predict uses
(images.fit_image: cropped to the text line, brought to its height), decoded as `task` decodes (the CLI sets
params.yaml's ocr.decode, as predict does), Tesseract at the lines' own resolution
in single-line mode (PSM 7), as the Tesseract stage hands it the scans, whitelisted to the model's charset so
that both are asked for the same characters. Both read with torch's thread count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.documents.ground_truth import GroundTruthError, GtLine, gt_split
from seqlab.tasks.ocr.images import ImageReadError, fit_image, fit_split
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.report import Recognizer, evaluate_recognizer
from seqlab.tasks.ocr.recognizer.task import OcrTask
from seqlab.tasks.ocr.recognizer.tesseract import Tesseract, is_available

SPLIT = "gt"  # the lines' split name in the figures
LINE_PSM = 7  # Tesseract's single-line mode
GRID = "predictions.png"


def score_ground_truth(task: OcrTask, model: nn.Module, lines: Sequence[GtLine], model_name: str, *,
                       tesseract: bool = True, grid: Path | None = None,
                       echo: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Each engine's figures on `lines` ({engine: summarize()'s figures + words_per_s, threads}), the model
    first, then Tesseract unless `tesseract` is False or it is not installed (said through `echo`).

    With `grid`, each engine's prediction grid (errors first) is written: the model's to `grid`, Tesseract's
    beside it as ``<stem>-tesseract.png``."""
    split = gt_split(lines, task.charset)
    engines: list[tuple[str, Recognizer, OcrSplit]] = [
        (model_name, CtcReader(model.eval(), task.charset, torch.device("cpu"), task.decode),
         _fitted(split, task.height))]
    if tesseract:
        ok, reason = is_available()
        if ok:
            engines.append((f"Tesseract (PSM {LINE_PSM})", Tesseract(task.charset, LINE_PSM, torch.get_num_threads()),
                            split))
        else:
            echo(f"Tesseract skipped: {reason}")
    scores: dict[str, dict[str, Any]] = {}
    for n, (name, reader, data) in enumerate(engines):
        evaluation = evaluate_recognizer(reader, {SPLIT: data}, name, grids={SPLIT: GRID}, line_splits=(SPLIT,))
        scores[name] = evaluation.metrics[SPLIT]
        if grid is not None:
            path = grid if n == 0 else grid.with_name(f"{grid.stem}-tesseract.png")
            evaluation.figures[GRID](path)
            echo(f"{name}: prediction grid written to {path}")
    return scores


def _fitted(split: OcrSplit, height: int) -> OcrSplit:
    """`split` at the model's height (images.fit_split); a line the normaliser refuses is bad ground truth."""
    try:
        return fit_split(split, height)
    except ImageReadError:
        problems = []
        for name, image in zip(split.fonts, split.images):  # gt_split keeps each line's name in `fonts`
            try:
                fit_image(image, height)
            except ImageReadError as exc:
                problems.append(f"{name}: {exc}")
        raise GroundTruthError("\n".join([f"{len(problems)} lines cannot be brought to the model's height "
                                          f"({height} px):", *problems]), problems) from None


def scores_table(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table, one row per engine, in the README's terms (percentages)."""
    def pct(x: float, digits: int = 2) -> str:
        return f"{100 * x:.{digits}f}%"

    rows = ["| engine | lines | CER | CER, case-insensitive | WER | lines/s |", "|---|---|---|---|---|---|"]
    rows += [f"| {name} | {s['count']} | {pct(s['cer'])} | {pct(s['cer_nocase'])} | {pct(s['wer'], 1)} | "
             f"{s['words_per_s']:.0f} ({s['threads']} threads) |" for name, s in scores.items()]
    return "\n".join(rows)
