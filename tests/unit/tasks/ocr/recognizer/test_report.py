"""evaluate_recognizer: one way to score any recognizer (our CTC models, Tesseract) on the test splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.recognizer.metrics import summarize
from seqlab.tasks.ocr.recognizer.report import evaluate_recognizer

CHARSET = Charset.from_name("digits_lower")
EVAL_KEYS = {"count", "cer", "cer_nocase", "cer_alnum_nocase", "wer", "word_accuracy", "mean_ned_similarity", "words_per_s", "threads"}


def _split(texts: list[str], seed: int, kinds: list[str] | None = None) -> OcrSplit:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, size=(8, 4 + 3 * len(t)), dtype=np.uint8) for t in texts]
    return OcrSplit(images, texts, [CHARSET.encode(t) for t in texts],
                    np.array([im.shape[1] for im in images]), ["f.ttf"] * len(texts), kinds or [])


class Lookup:
    """A recognizer that knows the answer for each image (by its bytes) and records what it was asked."""

    def __init__(self, answers: dict[bytes, str]) -> None:
        self.answers, self.calls = answers, []

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        self.calls.append(len(images))
        return [self.answers[im.tobytes()] for im in images]


def test_scores_every_split_the_same_way(tmp_path) -> None:
    splits = {"test": _split(["ab", "cde", "f1", "xyz9"], 0), "test_heldout_fonts": _split(["hello", "q"], 1)}
    preds = {"test": ["ab", "cdx", "", "xyz9"], "test_heldout_fonts": ["hallo", "q"]}
    recognizer = Lookup({im.tobytes(): p for s in splits for im, p in zip(splits[s].images, preds[s], strict=True)})

    metrics, tables, figures = evaluate_recognizer(recognizer, splits, "Lookup")

    assert recognizer.calls == [4, 2]  # one read per split, all its images
    for split, data in splits.items():
        assert set(metrics[split]) == EVAL_KEYS
        expected = summarize(preds[split], data.texts)
        expected.pop("by_length")
        assert {k: metrics[split][k] for k in expected} == expected
        assert metrics[split]["threads"] == torch.get_num_threads()
    assert tables["by_length"] == [
        {"length": 2, "split": "test", "count": 2, "cer": 0.5, "word_accuracy": 0.5},
        {"length": 3, "split": "test", "count": 1, "cer": 1 / 3, "word_accuracy": 0.0},
        {"length": 4, "split": "test", "count": 1, "cer": 0.0, "word_accuracy": 1.0},
        {"length": 1, "split": "test_heldout_fonts", "count": 1, "cer": 0.0, "word_accuracy": 1.0},
        {"length": 5, "split": "test_heldout_fonts", "count": 1, "cer": 0.2, "word_accuracy": 0.0},
    ]
    assert list(figures) == ["predictions.png"]
    assert not list(tmp_path.iterdir())  # nothing is drawn until the caller asks
    figures["predictions.png"](tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and grid.width > 0


def test_no_test_split_no_grid() -> None:
    data = _split(["ab"], 0)
    _, _, figures = evaluate_recognizer(Lookup({data.images[0].tobytes(): "ab"}), {"val": data}, "x")
    assert figures == {}



def test_splits_with_kinds_are_scored_by_kind() -> None:
    """Per-kind rows for splits that record kinds, as a table only: a split's figures stay scalars."""
    texts = ["London", "2048", "b0ok", "qzx", "paris", "Two words", "A window of prose"]
    kinds = ["dictionary", "number", "mixed", "random", "dictionary", "words", "prose"]
    preds = ["london", "2049", "b0ok", "", "paris", "Two words", "A window of prose"]
    words = _split(texts, 0, kinds)
    splits = {"test": words, "test_heldout_fonts": _split(["ab"], 1)}  # an old file: no kinds
    answers = {im.tobytes(): p for im, p in zip(words.images, preds, strict=True)}
    answers[splits["test_heldout_fonts"].images[0].tobytes()] = "ab"

    metrics, tables, _ = evaluate_recognizer(Lookup(answers), splits, "Lookup")

    assert tables["by_kind"] == [
        {"split": "test", "kind": "dictionary", "count": 2, "cer": 1 / 11, "cer_nocase": 0.0, "word_accuracy": 0.5},
        {"split": "test", "kind": "mixed", "count": 1, "cer": 0.0, "cer_nocase": 0.0, "word_accuracy": 1.0},
        {"split": "test", "kind": "number", "count": 1, "cer": 0.25, "cer_nocase": 0.25, "word_accuracy": 0.0},
        {"split": "test", "kind": "prose", "count": 1, "cer": 0.0, "cer_nocase": 0.0, "word_accuracy": 1.0},
        {"split": "test", "kind": "random", "count": 1, "cer": 1.0, "cer_nocase": 1.0, "word_accuracy": 0.0},
        {"split": "test", "kind": "words", "count": 1, "cer": 0.0, "cer_nocase": 0.0, "word_accuracy": 1.0},
    ]
    assert set(metrics["test"]) == set(metrics["test_heldout_fonts"]) == EVAL_KEYS  # with kinds or without


def test_ctc_evaluation_reads_native_height_scans_as_predict_would(tmp_path, monkeypatch) -> None:
    """Every test split is scored; the scans, stored at their own heights, reach the model through
    images.fit_split (the normaliser predict uses), at the model's height."""
    from seqlab.tasks.ocr.config import CRNNConfig
    from seqlab.tasks.ocr.data import LINE_SPLITS, TEST_SPLITS, save_split, split_path
    from seqlab.tasks.ocr.images import fit_image
    from seqlab.tasks.ocr.recognizer import task as task_module
    from seqlab.tasks.ocr.recognizer.models import CRNN, model_config

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    words = [np.where(rng.random((32, 40)) < 0.2, 0, 255).astype(np.uint8) for _ in range(2)]
    scans = [np.full((h, 5 * h), 255, np.uint8) for h in (25, 44, 60)]
    for scan in scans:
        scan[scan.shape[0] // 3: 2 * scan.shape[0] // 3, 4:-4] = 0  # a bar of "text" in the middle third
    for split in TEST_SPLITS:
        if split == "test_reserved_scans":
            save_split(split_path(split), scans, ["a b", "c d", "e f"], ["f.ttf"] * 3, None)
        else:
            texts = ["a b", "c d"] if split in LINE_SPLITS else ["ab", "cd"]
            save_split(split_path(split), words, texts, ["f.ttf"] * 2, 32)
    seen: list[list[tuple[int, int]]] = []
    reader = task_module.CtcReader

    class Spy(reader):  # type: ignore[misc, valid-type]
        def read(self, images):
            seen.append([im.shape for im in images])
            return super().read(images)

    monkeypatch.setattr(task_module, "CtcReader", Spy)
    torch.manual_seed(0)
    model = CRNN(model_config(CRNNConfig, channels=[4, 8], hidden_size=8, downsample=4), len(CHARSET.chars) + 1, 32).eval()
    task = task_module.OcrTask("crnn", CHARSET, height=32)
    metrics, _, figures = task.evaluate(model, torch.device("cpu"))
    assert set(metrics) == set(TEST_SPLITS) and metrics["test_reserved_scans"]["count"] == 3
    assert "predictions_reserved_scans.png" in figures
    assert seen[list(TEST_SPLITS).index("test_reserved_scans")] == [fit_image(s, 32).shape for s in scans]
    assert all(h == 32 for shapes in seen for h, _ in shapes)


def test_an_ocr_evaluation_is_written_as_headline_figures_and_details(tmp_path) -> None:
    """What `seqlab evaluate ocr` leaves in metrics/ocr-<variant>/ (seqlab.core.results): eval.json holds the
    CER of the headline splits alone, splits.json every figure of every split, by_kind.csv the kinds."""
    import csv
    import json

    from seqlab.core.results import write_results
    from seqlab.tasks.ocr.recognizer.task import OcrTask

    texts, kinds = ["ab", "2048"], ["dictionary", "number"]
    splits = {name: _split(texts, seed, kinds) for seed, name in enumerate(("test", "test_reserved", "test_lines"))}
    answers = {im.tobytes(): text for s in splits.values() for im, text in zip(s.images, s.texts, strict=True)}
    answers[splits["test_reserved"].images[1].tobytes()] = "2049"
    evaluation = evaluate_recognizer(Lookup(answers), splits, "Lookup")

    files = write_results(tmp_path, evaluation, OcrTask.headline_metric, OcrTask.headline_splits)

    assert json.loads((tmp_path / "eval.json").read_text()) == {"test": {"cer": 0.0}, "test_reserved": {"cer": 1 / 6}}
    records = json.loads((tmp_path / "splits.json").read_text())
    assert [r.pop("split") for r in records] == list(splits) and all(set(r) == EVAL_KEYS for r in records)
    with (tmp_path / "by_kind.csv").open() as fh:
        assert [(r["split"], r["kind"], float(r["cer"])) for r in csv.DictReader(fh)] == [
            ("test", "dictionary", 0.0), ("test", "number", 0.0), ("test_reserved", "dictionary", 0.0),
            ("test_reserved", "number", 0.25), ("test_lines", "dictionary", 0.0), ("test_lines", "number", 0.0)]
    assert [f.name for f in files] == ["eval.json", "splits.json", "by_length.csv", "by_line_words.csv", "by_kind.csv",
                                       "predictions.png"]
