"""RapidOCR, the second reference engine: PaddleOCR's PP-OCRv6 small text recognizer (a CTC model like ours,
with a learned language context) on onnxruntime, through the `rapidocr` package, and the `seqlab rapidocr`
stage that scores it on our exact test images.

Recognition only: each word or line image goes straight to the recognizer (no text detection, no angle
classifier), as our models and Tesseract get them; the scans at native height (it resizes every image to its
own 48-px input). The model is the ONNX file inside the wheel (rapidocr/models/PP-OCRv6_rec_small.onnx, its
character list in the file's metadata), named explicitly so that nothing is looked up or downloaded. Its
output is normalised as Tesseract's is (Charset.normalize: single spaces, case folded only for a caseless
charset); it reads PP-OCR's whole character set (no whitelist), so a character outside ours counts as an error.
onnxruntime gets torch's thread count, the cores our models and Tesseract are given.

Batching: RapidOCR reads a list of images in width-sorted batches of `Rec.rec_batch_num`, each padded to its
widest image. On 2 cores (1 thread, 2026-12-07, beside a training run) batches did not pay: test_reserved words
28-30 words per CPU-second at batch 1-4, 24 at 6 (RapidOCR's default), 22 at 16; test_reserved_lines 10-11
lines per CPU-second at 1, 8 at 6, 5-6 at 16. Hence BATCH = 1.

The stage writes metrics/ocr-rapidocr/ through reference_engine, as Tesseract's does metrics/ocr-tesseract/.
Optional dependency: ``pip install 'seqlab[rapidocr]'`` (pinned in requirements.txt).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.core.errors import SeqlabError
from seqlab.core.task import Reference
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import TEST_SPLITS
from seqlab.tasks.ocr.recognizer.reference_engine import (
    Pass,
    data_charset,
    engine_reference,
    grayscale,
    score_engine,
)

MODEL_ID = "ocr-rapidocr"  # its metrics directory, beside metrics/ocr-tesseract
MODEL_FILE = "PP-OCRv6_rec_small.onnx"  # in the wheel's models/ folder
BATCH = 1  # images per onnxruntime call (see the module docstring)
NAME = "RapidOCR (PP-OCRv6 small)"


class RapidOcrUnavailable(SeqlabError):
    """rapidocr is not installed, or its recognition model is missing or does not load."""


def model_file() -> Path | None:
    """The recognition model inside the installed wheel, or None when rapidocr is not installed."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models" / MODEL_FILE


def is_available() -> tuple[bool, str]:
    """(True, "") if rapidocr imports and its wheel has the model, else (False, reason)."""
    path = model_file()
    if path is None:
        return False, "rapidocr is not installed; pip install 'seqlab[rapidocr]'"
    try:
        import rapidocr  # noqa: F401
    except (ImportError, OSError) as exc:  # e.g. its cv2 or onnxruntime fails to load
        return False, f"rapidocr does not import ({type(exc).__name__}: {exc})"
    if not path.is_file():
        return False, f"{path} is missing (reinstall rapidocr==3.10.0: the model ships in its wheel)"
    return True, ""


def engine_record() -> dict[str, Any]:
    """What a RapidOCR figure was read with: the package version and the model file (splits.json, MLflow params)."""
    return {"rapidocr": importlib.metadata.version("rapidocr"), "model": MODEL_FILE}


class RapidOcr:
    """RapidOCR's recognizer as a recognizer of our labels: grayscale images in, texts normalised to `charset`.

    Args:
        charset: the labels' charset (normalisation only: PP-OCR reads its own characters).
        threads: onnxruntime intra-op threads.
        batch: images per onnxruntime call.
    """

    def __init__(self, charset: Charset, threads: int = 1, batch: int = BATCH) -> None:
        ok, reason = is_available()
        if not ok:
            raise RapidOcrUnavailable(f"RapidOCR unavailable: {reason}")
        from rapidocr import RapidOCR

        self.charset = charset
        path = model_file()
        try:
            self._engine = RapidOCR(params={
                "Global.use_det": False, "Global.use_cls": False, "Global.use_rec": True,
                "Global.log_level": "warning", "Rec.model_path": str(path), "Rec.rec_batch_num": batch,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1})
            self._engine.recognize_txt([np.full((32, 32, 3), 255, np.uint8)])  # loads the model now, not mid-read
        except Exception as exc:  # whatever onnxruntime or rapidocr raise on a damaged install: one line
            raise RapidOcrUnavailable(f"RapidOCR could not load {path} ({type(exc).__name__}: {exc})") from None

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        """Recognize each uint8 grayscale (H, W) image (dark text on light background, raw pixels)."""
        colour = []
        for im in map(grayscale, images):
            colour.append(np.repeat(im[:, :, None], 3, axis=2))  # its BGR input: grey in every channel
        if not colour:
            return []
        texts = self._engine.recognize_txt(colour).txts or ()
        return [self.charset.normalize(t) for t in texts]


def run_rapidocr_stage() -> dict[str, Any]:
    """The `seqlab rapidocr` stage: score RapidOCR on every OCR test split (words and lines alike: it has no
    page segmentation modes) and write metrics/ocr-rapidocr/ in the models' layout, each split's figures with
    engine_record(); return the figures per split."""
    charset = data_charset()
    reader = RapidOcr(charset, threads=torch.get_num_threads())  # the same cores our models get
    return score_engine(MODEL_ID, charset, [Pass(reader, TEST_SPLITS, NAME, engine_record())])


def reference() -> Reference | None:
    """RapidOCR as its stage left it in metrics/ocr-rapidocr/ (None before the stage ran), for MLflow: its params
    are the package version and model file its figures record."""
    return engine_reference(MODEL_ID, lambda records: {key: records[0][key] for key in ("rapidocr", "model")})
