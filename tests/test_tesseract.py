import string

import numpy as np
import pytest

pytest.importorskip("tesserocr")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from seqlab.tasks.ocr.tesseract import TesseractReader, is_available  # noqa: E402


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
