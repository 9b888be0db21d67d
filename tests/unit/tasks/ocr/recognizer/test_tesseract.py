import string

import numpy as np
import pytest

pytest.importorskip("tesserocr")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from seqlab.tasks.ocr.recognizer.tesseract import TesseractReader, is_available  # noqa: E402


def render(word: str) -> np.ndarray:
    font = ImageFont.load_default(size=48)
    _, _, x1, y1 = font.getbbox(word)
    im = Image.new("L", (x1 + 10, y1 + 10), 255)
    ImageDraw.Draw(im).text((5, 5), word, font=font, fill=0)
    return np.asarray(im)


def test_reads_rendered_words() -> None:
    ok, reason = is_available()
    if not ok:
        pytest.skip(reason)
    words = ["hello", "Quartz", "seqlab42"]
    with TesseractReader(string.ascii_letters + string.digits) as reader:
        preds = reader.read([render(w) for w in words])
    assert len(preds) == 3
    for pred, word in zip(preds, words, strict=True):
        assert Levenshtein.distance(pred, word) <= 1, (pred, word)


def test_whitelist_limits_output() -> None:
    ok, reason = is_available()
    if not ok:
        pytest.skip(reason)
    with TesseractReader("0123456789") as reader:
        (pred,) = reader.read([render("2048")])
    assert set(pred) <= set("0123456789")


def test_recognizer_reads_in_parallel_in_input_order_and_normalizes() -> None:
    ok, reason = is_available()
    if not ok:
        pytest.skip(reason)
    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.recognizer.tesseract import Tesseract

    words = ["Hello", "Quartz", "seqlab42", "World", "2048"]
    images = [render(w) for w in words]
    caseless = Charset.from_name("digits_lower")
    # A caseless charset lets Tesseract read capitals too (then folds them): "Hello" must not become "ello".
    with TesseractReader(caseless.chars + caseless.chars.upper()) as reader:
        one_engine = [caseless.normalize(t) for t in reader.read(images)]
    assert Tesseract(caseless, psm=8, threads=3).read(images) == one_engine
    assert all(t == t.lower() for t in one_engine)
    assert one_engine[0] == "hello" and one_engine[3] == "world"


@pytest.mark.slow  # the whole Tesseract stage on rendered splits
def test_stage_writes_eval_json_and_grid(tmp_path, monkeypatch) -> None:
    ok, reason = is_available()
    if not ok:
        pytest.skip(reason)
    import json

    from PIL import Image as PILImage

    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.data import LINE_SPLITS, TEST_SPLITS, save_split, split_path, write_meta
    from seqlab.tasks.ocr.recognizer.tesseract import reference, run_tesseract_stage

    monkeypatch.chdir(tmp_path)
    charset = Charset.from_name("digits_lower")
    words = ["hello", "quartz", "2048"]
    images = [np.asarray(PILImage.fromarray(im).resize((im.shape[1] * 32 // im.shape[0], 32)))
              for im in map(render, words)]
    lines = ["two words", "reads a line 42"]
    line_images = [np.asarray(PILImage.fromarray(im).resize((im.shape[1] * 32 // im.shape[0], 32)))
                   for im in map(render, lines)]
    for split in TEST_SPLITS:  # data/ocr (trdg) and data/ocr-reserved (Pillow, reserved families)
        if split in LINE_SPLITS:
            save_split(split_path(split), line_images, lines, ["f.ttf"] * 2, 32)
        else:
            save_split(split_path(split), images, words, ["f.ttf"] * 3, 32)
    write_meta(tmp_path / "data/ocr", charset, 32)
    metrics = run_tesseract_stage(word_psm=8, line_psm=7)
    out = tmp_path / "metrics/ocr-tesseract"
    assert json.loads((out / "eval.json").read_text()) == {s: {"cer": metrics[s]["cer"]} for s in ("test", "test_reserved")}
    written = {r.pop("split"): r for r in json.loads((out / "splits.json").read_text())}
    assert written == json.loads(json.dumps(metrics))
    keys = {"count", "cer", "cer_nocase", "cer_alnum_nocase", "wer", "word_accuracy", "mean_ned_similarity", "words_per_s", "threads",
            "psm"}
    assert set(written) == set(TEST_SPLITS) and all(set(m) == keys for m in written.values())
    assert {split: m["psm"] for split, m in written.items()} == {s: 7 if s in LINE_SPLITS else 8 for s in TEST_SPLITS}
    assert written["test"]["count"] == 3 and written["test"]["cer"] < 0.5
    # single-line mode keeps the spaces between words (a whitelist without the space would drop them)
    assert written["test_lines"]["count"] == 2 and written["test_lines"]["wer"] < 0.5
    baseline = reference()  # what the evaluate stage logs into MLflow: params as the files record them
    assert baseline is not None and baseline.params == {"word_psm": 8, "line_psm": 7}
    assert [f.name for f in baseline.files] == ["eval.json", "by_line_words.csv", "predictions.png",
                                                "predictions_reserved_degraded.png", "predictions_reserved_lines.png",
                                                "predictions_reserved_scans.png", "splits.json"]
    for grid in ("predictions.png", "predictions_reserved_degraded.png", "predictions_reserved_lines.png",
                 "predictions_reserved_scans.png", "by_line_words.csv"):
        assert (tmp_path / "metrics/ocr-tesseract" / grid).stat().st_size > 0
