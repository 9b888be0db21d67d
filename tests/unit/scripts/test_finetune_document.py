"""benchmarks/finetune_document.py: the stand-in document's lines, pages and font check, on tiny inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from seqlab.core.errors import SeqlabError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.documents.ground_truth import read_ground_truth
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir
from tests.support import REPO, load_script


def _load(name: str) -> ModuleType:
    return load_script(REPO / "benchmarks" / f"{name}.py")


bench = _load("finetune_document")
CHARSET = Charset.from_name("english")
FONTS = trdg_dir() / "fonts" / "latin"
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing".split()


def _passages(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 40)))).capitalize() + "." for _ in range(count)]


def test_wrapped_lines_are_whole_words_of_the_kept_length_and_charset() -> None:
    passages = ["Short one.", *_passages(30), "Ünïcode " * 12]
    lines, end = bench.wrap_passages(passages, 0, 20, CHARSET, wrap=40, chars=(25, 40))
    assert len(lines) == 20 and 1 < end <= 31
    assert all(25 <= len(line) <= 40 and CHARSET.accepts(line) for line in lines)
    text = " ".join(passages[:end]).split()
    assert all(word in text for line in lines for word in line.split())  # no word broken or invented
    with pytest.raises(SeqlabError, match="ran out of passages"):
        bench.wrap_passages(passages, 0, 10_000, CHARSET, wrap=40, chars=(25, 40))


def test_the_other_page_shares_no_passage_or_line_with_the_document_and_the_seed_decides() -> None:
    passages = _passages(bench.GAP_PASSAGES + 400)
    doc = bench.make_document(passages, CHARSET, 30, 10, seed=1)
    assert len(doc.train) == 30 and len(doc.test) == 10
    assert doc.train_passages[1] + bench.GAP_PASSAGES == doc.test_passages[0]
    assert not set(doc.train) & set(doc.test)
    assert bench.make_document(passages, CHARSET, 30, 10, seed=1) == doc
    assert bench.make_document(passages, CHARSET, 30, 10, seed=2).train != doc.train


def test_lines_are_binarised_ground_truth_pairs_of_page_like_heights(tmp_path) -> None:
    lines = ["A line of a printed book, thirty-nine ch", "and the next one: (short) 42% of it!"]
    sizes = bench.write_lines(tmp_path / "a", lines, FONTS / "Lato-Regular.ttf", seed=3, first_page=4)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "page-04-line-01.gt.txt", "page-04-line-01.png", "page-04-line-02.gt.txt", "page-04-line-02.png"]
    read = read_ground_truth(tmp_path / "a", CHARSET)
    assert [ln.text for ln in read] == lines
    low, high = bench.DOCUMENT_LOOK.line_height
    for line, (width, height) in zip(read, sizes):
        assert line.image.shape == (height, width) and low <= height <= high
        assert set(np.unique(line.image)) <= {0, 255} and (line.image == 0).mean() > 0.05  # ink, binarised
    bench.write_lines(tmp_path / "b", lines, FONTS / "Lato-Regular.ttf", seed=3, first_page=4)
    for name in ("page-04-line-01.png", "page-04-line-02.png"):  # same seed, same pixels
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)), np.asarray(Image.open(tmp_path / "b" / name)))


def test_the_font_must_be_neither_trained_on_nor_reserved(tmp_path) -> None:
    inventory = tmp_path / "ocr-fonts.json"
    inventory.write_text(json.dumps({"fonts": [{"family": "Lato", "path": str(FONTS / "Lato-Regular.ttf")}]}))
    assert bench.check_font(FONTS / "Roboto-Regular.ttf", inventory) == "Roboto"
    with pytest.raises(SeqlabError, match="'Lato' is in the training inventory"):
        bench.check_font(FONTS / "Lato-Bold.ttf", inventory)
    reserved = shutil.copy(FONTS / "Roboto-Regular.ttf", tmp_path / "LiberationSerif-Regular.ttf")
    with pytest.raises(SeqlabError, match="reserved evaluation family Liberation"):
        bench.check_font(Path(reserved), inventory)
