"""Bad files for OCR predict: each gets its own one-line error or a correct answer; the batch goes on.

Built with Pillow/numpy in tmp: empty file, truncated PNG, text named .png, 1x1, 20000 px of text, a word in
20000 px of margin (cropped, then read), 16-bit PNG, CMYK JPEG, animated GIF, a directory, a missing path (plus
a 1e6 x 2 image that must be refused before it is resized to gigabytes). Checked at three levels: `load_word_image`, `OcrTask.predict` with a tiny untrained
CRNN, and `seqlab predict ocr` end to end.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seqlab.tasks.ocr.images import ImageReadError, load_word_image
from tests.support import tiny_ocr_checkpoint

HEIGHT = 32
CHARSET = "0123456789abcdefghijklmnopqrstuvwxyz"

# name -> expected error fragment, or None for "answered" (then checked against a reference image)
EXPECTED = {
    "empty.png": "empty file",
    "truncated.png": "cannot decode image",
    "text.png": "not a recognised image format",
    "tiny-1x1.png": "too small",
    "wide-20000.png": "px wide at height 32; the limit is 16384",  # words across the whole width: no margin to crop
    "margins-20000.png": None,  # one word, then blank: predict crops the margin (normalize.crop_for_model)
    "huge-1e6x2.png": "px wide",
    "sixteen-bit.png": None,
    "cmyk.jpg": None,
    "animated.gif": None,
    "a-directory.png": "is a directory",
    "missing.png": "no such file",
}


def _word(width: int = 96, height: int = HEIGHT, text: str = "hello") -> Image.Image:
    im = Image.new("L", (width, height), 255)
    ImageDraw.Draw(im).text((4, height // 4), text, fill=0)
    return im


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    _word().save(d / "good.png")
    (d / "empty.png").write_bytes(b"")
    buf = io.BytesIO()
    _word(400, 64).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.png").write_text("this is not an image\n")
    Image.new("L", (1, 1), 0).save(d / "tiny-1x1.png")
    wide = Image.new("L", (20000, HEIGHT), 255)
    for x in range(4, 20000, 40):
        ImageDraw.Draw(wide).text((x, HEIGHT // 4), "hello", fill=0)
    wide.save(d / "wide-20000.png")
    _word(20000).save(d / "margins-20000.png")
    Image.new("L", (1_000_000, 2), 255).save(d / "huge-1e6x2.png")
    Image.fromarray(np.asarray(_word(), dtype=np.uint16) * 257).save(d / "sixteen-bit.png")
    _word().convert("CMYK").save(d / "cmyk.jpg", "JPEG", quality=95)
    first = _word().convert("P")
    first.save(d / "first-frame.gif")
    first.save(d / "animated.gif", save_all=True, append_images=[_word(text="XXXXXXXX").convert("P")],
               duration=100, loop=0)
    (d / "a-directory.png").mkdir()
    return d


def test_fixtures_are_what_they_claim(files):
    assert Image.open(files / "sixteen-bit.png").mode == "I;16"
    assert Image.open(files / "cmyk.jpg").mode == "CMYK"
    assert Image.open(files / "animated.gif").n_frames == 2
    assert Image.open(files / "wide-20000.png").size == Image.open(files / "margins-20000.png").size == (20000, HEIGHT)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_word_image_answers_or_says_why(files, name):
    expected = EXPECTED[name]
    if expected is not None:
        with pytest.raises(ImageReadError) as err:
            load_word_image(files / name, HEIGHT)
        assert expected in str(err.value) and "\n" not in str(err.value)
        return
    image = load_word_image(files / name, HEIGHT)
    if name == "margins-20000.png":  # the crop keeps the word and little else
        ink = np.asarray(Image.open(files / name)) < 128
        assert image.shape[0] == HEIGHT and image.shape[1] < 96, image.shape
        # The 11-px word in 32 rows of ground is cut to its line band (normalize.crop_to_line) and scaled up.
        assert (image < 128).sum() > ink.sum() > 0
        return
    reference = load_word_image(files / ("first-frame.gif" if name == "animated.gif" else "good.png"), HEIGHT)
    assert image.dtype == np.uint8 and image.shape == reference.shape
    if name == "cmyk.jpg":  # lossy: close, not equal
        assert np.abs(image.astype(int) - reference.astype(int)).mean() < 8
    else:
        assert np.array_equal(image, reference)


def test_any_decoder_exception_becomes_one_line(files, monkeypatch):
    """Pillow raises more than OSError on damaged data (zlib.error, struct.error...): never let one escape."""
    import seqlab.tasks.ocr.images as images

    def broken(img):
        raise RuntimeError("")  # no message at all, the worst case for a one-line report

    monkeypatch.setattr(images.ImageOps, "exif_transpose", broken)
    with pytest.raises(ImageReadError, match=r"cannot decode image \(RuntimeError\)"):
        load_word_image(files / "good.png", HEIGHT)


def _tiny_model_checkpoint(path: Path) -> Path:
    return tiny_ocr_checkpoint(path, CHARSET, HEIGHT)


def _batch(files: Path) -> list[str]:
    names = sorted(EXPECTED) + ["good.png"]
    return [str(files / n) for n in names]


def _check_outputs(files: Path, stdout: str, stderr: str) -> None:
    answered = dict(line.split("\t", 1) for line in stdout.splitlines())
    errors = stderr.strip().splitlines()
    bad = [n for n, e in EXPECTED.items() if e is not None]
    assert sorted(Path(p).name for p in answered) == sorted([n for n, e in EXPECTED.items() if e is None] + ["good.png"])
    assert len(errors) == len(bad), stderr
    for name in bad:
        (line,) = [e for e in errors if e.startswith(f"{files / name}: ")]
        assert EXPECTED[name] in line, line
    # Same pixels, same answer: the 16-bit copy reads like the 8-bit original.
    assert answered[str(files / "sixteen-bit.png")] == answered[str(files / "good.png")]


def test_ocr_task_predict_answers_the_rest_of_the_batch(files, tmp_path):
    from seqlab.core.checkpoint import load_model

    task, model, ckpt = load_model(_tiny_model_checkpoint(tmp_path / "tiny.pt"), "ocr")
    out, err = io.StringIO(), io.StringIO()
    failures = task.predict(model, ckpt["config"]["meta"], _batch(files), out, err)
    assert failures == sum(e is not None for e in EXPECTED.values())
    _check_outputs(files, out.getvalue(), err.getvalue())


@pytest.mark.slow  # a `seqlab predict ocr` process
def test_seqlab_predict_ocr_end_to_end(files, tmp_path):
    model = _tiny_model_checkpoint(tmp_path / "tiny.pt")
    proc = subprocess.run([sys.executable, "-m", "seqlab.cli", "predict", "ocr", "--greedy", "--model", str(model), *_batch(files)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # some inputs failed
    assert "Traceback" not in proc.stderr
    _check_outputs(files, proc.stdout, proc.stderr)


def _scan_line() -> np.ndarray:
    """A binarised line (0 or 255), 40 px tall: what a scanner hands over."""
    im = Image.new("L", (420, 40), 255)
    ImageDraw.Draw(im).text((8, 12), "A SCANNED LINE, 1987 (A-B).", fill=0)
    return np.where(np.asarray(im) < 128, 0, 255).astype(np.uint8)


def _saved_in_modes(d: Path, line: np.ndarray) -> dict[str, Path]:
    """The same line as 1-bit, grey, grey+alpha, RGBA (opaque and with transparent paper) and palette PNGs
    (with and without a transparent entry)."""
    gray = Image.fromarray(line)
    ink = line < 128
    alpha = Image.fromarray(np.where(ink, 255, 0).astype(np.uint8))
    files = {"1": gray.convert("1"), "L": gray, "LA": gray.convert("LA"), "RGBA": gray.convert("RGBA"), "P": gray.convert("P")}
    transparent = Image.merge("RGBA", (*Image.new("RGB", gray.size, (0, 0, 0)).split(), alpha))  # black ink, clear paper
    files["RGBA-transparent"] = transparent
    files["LA-transparent"] = Image.merge("LA", (Image.new("L", gray.size, 0), alpha))
    palette = Image.fromarray(ink.astype(np.uint8), mode="L").convert("P")
    palette.putpalette([255, 255, 255, 0, 0, 0])
    files["P"] = palette
    out = {}
    for name, im in files.items():
        out[name] = d / f"line-{name}.png"
        im.save(out[name])
    palette.save(d / "line-P-transparent.png", transparency=0)  # index 0 (the paper) transparent
    out["P-transparent"] = d / "line-P-transparent.png"
    return out


def test_png_modes_of_a_scan_read_alike(tmp_path):
    line = _scan_line()
    files = _saved_in_modes(tmp_path, line)
    modes = {name: Image.open(path).mode for name, path in files.items()}
    assert modes == {"1": "1", "L": "L", "LA": "LA", "RGBA": "RGBA", "P": "P", "RGBA-transparent": "RGBA",
                     "LA-transparent": "LA", "P-transparent": "P"}
    assert "transparency" in Image.open(files["P-transparent"]).info
    reference = load_word_image(files["L"], HEIGHT)
    assert reference.shape[0] == HEIGHT and (reference < 128).any()
    for name, path in files.items():
        assert np.array_equal(load_word_image(path, HEIGHT), reference), name
