"""The OCR data format (seqlab.tasks.ocr.data): what is on disk, and what comes back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqlab.core.errors import DataError
from seqlab.core.storage import load_arrays, save_arrays
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import OcrSplit, load_split, read_meta, save_split, write_meta

CHARSET = Charset.from_name("digits_lower")
HEIGHT = 6


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(HEIGHT, w), dtype=np.uint8) for w in (5, 12, 1)]


TEXTS = ["ab", "hello1", "z"]
FONTS = ["A.ttf", "Longer-Name.otf", "A.ttf"]


def test_archive_holds_the_documented_arrays(tmp_path) -> None:
    images = _images()
    save_split(tmp_path / "s.npz", images, TEXTS, FONTS, HEIGHT)
    a = load_arrays(tmp_path / "s.npz")
    assert sorted(a) == ["fonts", "height", "pixels", "texts", "widths"]
    assert a["pixels"].dtype == np.uint8 and a["pixels"].shape == (HEIGHT * (5 + 12 + 1),)
    assert np.array_equal(a["pixels"][: HEIGHT * 5], images[0].ravel())  # row-major, in image order
    assert a["widths"].dtype == np.int32 and a["widths"].tolist() == [5, 12, 1]
    assert a["height"].dtype == np.int32 and a["height"].shape == () and int(a["height"]) == HEIGHT
    assert a["texts"].dtype.kind == "U" and a["texts"].tolist() == TEXTS
    assert a["fonts"].dtype.kind == "U" and a["fonts"].tolist() == FONTS


def test_same_split_same_bytes(tmp_path) -> None:
    save_split(tmp_path / "a.npz", _images(), TEXTS, FONTS, HEIGHT)
    save_split(tmp_path / "b.npz", _images(), TEXTS, FONTS, HEIGHT)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_load_gives_back_what_was_saved(tmp_path) -> None:
    images = _images()
    save_split(tmp_path / "s.npz", images, TEXTS, FONTS, HEIGHT)
    data = load_split(tmp_path / "s.npz", CHARSET)
    assert len(data) == 3
    assert all(np.array_equal(a, b) for a, b in zip(data.images, images, strict=True))
    assert data.texts == TEXTS and data.fonts == FONTS
    assert data.labels == [CHARSET.encode(t) for t in TEXTS]
    assert data.widths.dtype == np.int64 and data.widths.tolist() == [5, 12, 1]


def test_kinds_round_trip(tmp_path) -> None:
    kinds = ["dictionary", "words", "prose"]
    save_split(tmp_path / "s.npz", _images(), TEXTS, FONTS, HEIGHT, kinds)
    a = load_arrays(tmp_path / "s.npz")
    assert sorted(a) == ["fonts", "height", "kinds", "pixels", "texts", "widths"]
    assert a["kinds"].dtype.kind == "U" and a["kinds"].tolist() == kinds
    assert load_split(tmp_path / "s.npz", CHARSET).kinds == kinds
    with pytest.raises(ValueError, match="2 kinds for 3 images"):
        save_split(tmp_path / "t.npz", _images(), TEXTS, FONTS, HEIGHT, kinds[:2])


def test_files_without_kinds_load_with_empty_kinds(tmp_path) -> None:
    """Splits written before `kinds` existed (the same arrays, no kinds member) still load."""
    save_split(tmp_path / "old.npz", _images(), TEXTS, FONTS, HEIGHT)
    assert "kinds" not in load_arrays(tmp_path / "old.npz")
    data = load_split(tmp_path / "old.npz", CHARSET)
    assert data.kinds == [] and data.texts == TEXTS
    assert OcrSplit.unlabelled(_images()).kinds == []
    images = _images()
    save_arrays(tmp_path / "bad.npz", pixels=np.concatenate([im.ravel() for im in images]),
                widths=np.array([im.shape[1] for im in images], np.int32), height=np.array(HEIGHT, np.int32),
                texts=np.array(TEXTS), fonts=np.array(FONTS), kinds=np.array(["number"]))
    with pytest.raises(DataError, match="1 kinds for 3 images"):
        load_split(tmp_path / "bad.npz", CHARSET)


def test_pixels_that_do_not_match_the_widths_are_refused(tmp_path) -> None:
    save_arrays(tmp_path / "s.npz", pixels=np.zeros(HEIGHT * 10, np.uint8), widths=np.array([5, 6], np.int32),
                height=np.array(HEIGHT, np.int32), texts=np.array(["a", "b"]), fonts=np.array(["f", "f"]))
    with pytest.raises(DataError, match="pixel count does not match"):
        load_split(tmp_path / "s.npz", CHARSET)


def test_labels_outside_the_charset_are_refused(tmp_path) -> None:
    save_split(tmp_path / "s.npz", _images(), ["ab", "HELLO!", "z"], FONTS, HEIGHT)
    with pytest.raises(DataError, match="'HELLO!' has characters outside the charset"):
        load_split(tmp_path / "s.npz", CHARSET)


def test_meta_round_trip_and_damage(tmp_path) -> None:
    write_meta(tmp_path, CHARSET, 32)
    assert json.loads((tmp_path / "meta.json").read_text()) == {"charset": CHARSET.chars, "height": 32}
    assert read_meta(tmp_path) == {"charset": CHARSET.chars, "height": 32}
    (tmp_path / "meta.json").write_text('{"charset": "abc"}')
    with pytest.raises(DataError, match="corrupt"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(DataError, match="missing"):
        read_meta(tmp_path)


def test_unlabelled_split() -> None:
    data = OcrSplit.unlabelled(_images())
    assert len(data) == 3 and data.labels == [[], [], []] and data.widths.tolist() == [5, 12, 1]


def _native_images() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size=(h, w), dtype=np.uint8) for h, w in ((25, 7), (60, 3), (41, 12))]


def test_native_heights_round_trip(tmp_path) -> None:
    images = _native_images()
    save_split(tmp_path / "s.npz", images, TEXTS, FONTS, None)
    a = load_arrays(tmp_path / "s.npz")
    assert sorted(a) == ["fonts", "heights", "pixels", "texts", "widths"]  # `heights` instead of `height`
    assert a["heights"].dtype == np.int32 and a["heights"].tolist() == [25, 60, 41]
    assert a["pixels"].size == sum(im.size for im in images)
    data = load_split(tmp_path / "s.npz", CHARSET)
    assert all(np.array_equal(x, y) for x, y in zip(data.images, images, strict=True))
    assert data.widths.tolist() == [7, 3, 12] and data.texts == TEXTS
    save_split(tmp_path / "again.npz", _native_images(), TEXTS, FONTS, None)
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "s.npz").read_bytes()


def test_heights_that_do_not_match_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="must have 25 rows"):
        save_split(tmp_path / "s.npz", _native_images(), TEXTS, FONTS, 25)
    save_arrays(tmp_path / "s.npz", pixels=np.zeros(100, np.uint8), widths=np.array([5, 5], np.int32),
                heights=np.array([10], np.int32), texts=np.array(["a", "b"]), fonts=np.array(["f", "f"]))
    with pytest.raises(DataError, match="pixel count does not match"):
        load_split(tmp_path / "s.npz", CHARSET)


def test_corrupt_ocr_meta_is_a_clear_error(tmp_path):
    """data/ocr/meta.json holds the charset; an edited one must not surface as a JSONDecodeError traceback."""
    (tmp_path / "meta.json").write_text('{"charset": "0123')
    with pytest.raises(DataError, match="meta.json is corrupt"):
        read_meta(tmp_path)  # what training reads the charset with
