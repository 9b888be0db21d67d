"""RapidOCR, the second reference engine: a pinned requirement, so these run (no skip when it is missing)."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from seqlab.core.errors import SeqlabError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.recognizer import rapidocr
from seqlab.tasks.ocr.recognizer.rapidocr import RapidOcr, RapidOcrUnavailable, is_available


def render(text: str, height: int = 32) -> np.ndarray:
    """Black text on white at 48 px, scaled to `height` (our model height)."""
    font = ImageFont.load_default(size=48)
    _, _, x1, y1 = font.getbbox(text)
    im = Image.new("L", (x1 + 10, y1 + 10), 255)
    ImageDraw.Draw(im).text((5, 5), text, font=font, fill=0)
    return np.asarray(im.resize((im.width * height // im.height, height)))


@pytest.fixture(scope="module")
def english() -> RapidOcr:
    return RapidOcr(Charset.from_name("english"), threads=1)


def test_the_pinned_install_is_usable() -> None:
    assert is_available() == (True, "")
    assert rapidocr.model_file().name == "PP-OCRv6_rec_small.onnx"


def test_reads_words_and_a_line_in_input_order(english: RapidOcr) -> None:
    texts = ["Hello", "Quartz", "seqlab42", "two words here"]
    preds = english.read([render(t) for t in texts])
    assert len(preds) == len(texts)
    for pred, text in zip(preds, texts, strict=True):
        assert Levenshtein.distance(pred, text) <= 1, (pred, text)
    assert english.read([]) == []


def test_output_is_normalized_like_tesseracts() -> None:
    """A caseless charset folds what the engine read, as Tesseract's output is folded."""
    caseless = RapidOcr(Charset.from_name("digits_lower"), threads=1)
    (pred,) = caseless.read([render("Hello")])
    assert pred == pred.lower() and Levenshtein.distance(pred, "hello") <= 1


def test_refuses_colour_images(english: RapidOcr) -> None:
    with pytest.raises(ValueError, match="2-D grayscale"):
        english.read([np.full((32, 40, 3), 255, np.uint8)])


def test_a_missing_install_or_model_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(rapidocr, "model_file", lambda: None)
    with pytest.raises(RapidOcrUnavailable, match="rapidocr is not installed") as info:
        RapidOcr(Charset.from_name("english"))
    assert isinstance(info.value, SeqlabError) and "\n" not in str(info.value)
    monkeypatch.setattr(rapidocr, "model_file", lambda: tmp_path / "PP-OCRv6_rec_small.onnx")
    assert is_available() == (False, f"{tmp_path / 'PP-OCRv6_rec_small.onnx'} is missing (reinstall rapidocr==3.10.0: "
                                     "the model ships in its wheel)")
    (tmp_path / "PP-OCRv6_rec_small.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(RapidOcrUnavailable, match="could not load"):
        RapidOcr(Charset.from_name("english"))


def test_stage_writes_the_references_files(tmp_path, monkeypatch) -> None:
    from seqlab.tasks.ocr.data import LINE_SPLITS, TEST_SPLITS, save_split, split_path, write_meta

    monkeypatch.chdir(tmp_path)
    words, lines = ["hello", "2048"], ["two words"]
    for split in TEST_SPLITS:  # data/ocr and data/ocr-reserved
        texts = lines if split in LINE_SPLITS else words
        save_split(split_path(split), [render(t) for t in texts], texts, ["f.ttf"] * len(texts), 32)
    write_meta(tmp_path / "data/ocr", Charset.from_name("english"), 32)
    metrics = rapidocr.run_rapidocr_stage()
    out = tmp_path / "metrics/ocr-rapidocr"
    assert json.loads((out / "eval.json").read_text()) == {s: {"cer": metrics[s]["cer"]} for s in ("test", "test_reserved")}
    written = {r.pop("split"): r for r in json.loads((out / "splits.json").read_text())}
    assert written == json.loads(json.dumps(metrics)) and set(written) == set(TEST_SPLITS)
    keys = {"count", "cer", "cer_nocase", "cer_alnum_nocase", "wer", "word_accuracy", "mean_ned_similarity",
            "words_per_s", "threads", "rapidocr", "model"}  # Tesseract's keys, its psm replaced by what read them
    assert all(set(m) == keys for m in written.values())
    assert written["test"]["count"] == 2 and written["test"]["cer"] < 0.3
    assert written["test_lines"]["count"] == 1 and written["test_lines"]["wer"] < 0.6
    baseline = rapidocr.reference()  # what `seqlab rapidocr` logs into MLflow
    assert baseline is not None and baseline.model_id == "ocr-rapidocr"
    assert baseline.params == {"rapidocr": "3.10.0", "model": "PP-OCRv6_rec_small.onnx"}
    assert [f.name for f in baseline.files] == ["eval.json", "by_line_words.csv", "predictions.png",
                                                "predictions_reserved_degraded.png", "predictions_reserved_lines.png",
                                                "predictions_reserved_scans.png", "splits.json"]
