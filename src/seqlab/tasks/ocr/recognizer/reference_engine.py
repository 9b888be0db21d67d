"""The stage of a reference engine (an OCR engine this project does not train: Tesseract, RapidOCR): score it on
the OCR test splits and write metrics/<its id>/ in the models' layout, and read those files back as the
MLflow run that puts it beside our models.

Each engine's module builds its readers and says what its run's params are; scoring, the file layout and the
reading back are this module's, so `dvc metrics show` and the README put every engine's figures, computed the
same way (:func:`~seqlab.tasks.ocr.recognizer.report.evaluate_recognizer`), side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from seqlab.core import paths
from seqlab.core.results import HEADLINE_FILE, SPLITS_FILE, write_results
from seqlab.core.task import Evaluation, Figure, Reference
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import DATA_DIR, load_test_splits, read_meta
from seqlab.tasks.ocr.recognizer.report import (
    HEADLINE_METRIC,
    HEADLINE_SPLITS,
    Recognizer,
    evaluate_recognizer,
)


def grayscale(image: Any) -> np.ndarray:
    """A reference engine's input as the engines take it: a contiguous uint8 (H, W) array, or a ValueError."""
    im = np.ascontiguousarray(image, dtype=np.uint8)
    if im.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {im.shape}")
    return im


# The breakdowns a reference engine's files keep (not by_length: the README compares it for our models only).
TABLES = ("by_line_words", "by_kind")


class Pass(NamedTuple):
    """One reading pass of an engine: `recognizer` reads `splits`, its prediction grids titled `name`; `record`
    is added to each of those splits' figures in splits.json (what the pass ran with, e.g. Tesseract's psm)."""

    recognizer: Recognizer
    splits: Sequence[str]
    name: str
    record: Mapping[str, Any]


def data_charset() -> Charset:
    """The charset of the test labels (data/ocr/meta.json): what an engine's output is scored in."""
    return Charset.from_name(read_meta(paths.data_dir(DATA_DIR))["charset"])


def score_engine(model_id: str, charset: Charset, passes: Sequence[Pass]) -> dict[str, dict[str, Any]]:
    """Run each pass on its test splits (labels in `charset`) and write metrics/`model_id`/ (seqlab.core.results);
    return the figures per split."""
    splits = load_test_splits(charset)
    metrics: dict[str, dict[str, Any]] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    figures: dict[str, Figure] = {}
    for recognizer, names, name, record in passes:
        part = evaluate_recognizer(recognizer, {s: splits[s] for s in names}, name)
        metrics.update({split: {**m, **record} for split, m in part.metrics.items()})
        for table in TABLES:
            tables[table] = tables.get(table, []) + part.tables.get(table, [])
        figures.update(part.figures)
    evaluation = Evaluation(metrics, {name: rows for name, rows in tables.items() if rows}, figures)
    write_results(paths.metrics_dir(model_id), evaluation, HEADLINE_METRIC, HEADLINE_SPLITS)
    return metrics


def engine_reference(model_id: str, params: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Reference | None:
    """The engine as its stage left it in metrics/`model_id`/ (None before the stage ran), for MLflow: its params
    are `params` of splits.json's records (what the files say it ran with), its files eval.json first."""
    out = paths.metrics_dir(model_id)
    if not (out / HEADLINE_FILE).is_file() or not (out / SPLITS_FILE).is_file():
        return None
    records = json.loads((out / SPLITS_FILE).read_text())
    files = [out / HEADLINE_FILE, *sorted(f for f in out.iterdir() if f.suffix in (".json", ".csv", ".png")
                                          and f.name != HEADLINE_FILE)]
    return Reference(model_id, params(records), files)
