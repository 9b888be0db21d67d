"""OCR words/s and CER of our CRNN vs Tesseract, on the same images with the same threads.

The images are the ones the rendering benchmark just drew (the OCR generate stage's mix, so the
training distribution). The CRNN is the pipeline's checkpoint, models/ocr-crnn.pt, read through
`CtcReader` exactly as evaluation reads; without a checkpoint an untrained CRNN of params.yaml's
shape stands in for the speed figure and the CER figure is skipped. Tesseract is
`seqlab.tasks.ocr.recognizer.tesseract.Tesseract` (tesserocr, word PSM, charset whitelist) with as many
engines as torch has threads. Both read every image in each repeat; labels and outputs are
normalised to the model's charset.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seqlab.bench.report import figure, skipped
from seqlab.core import paths
from seqlab.core.checkpoint import load_model
from seqlab.core.config import Params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.metrics import cer
from seqlab.tasks.ocr.recognizer.models import CRNN
from seqlab.tasks.ocr.recognizer.tesseract import Tesseract, is_available

MODEL_ID = "ocr-crnn"
WORD_PSM = 8


def run(params: Params, repeats: int, images: Sequence[np.ndarray], texts: Sequence[str]) -> dict[str, Any]:
    model, charset, source = _crnn(params)
    truths = [charset.normalize(t) for t in texts]
    threads = torch.get_num_threads()
    settings = {"images": len(images), "threads": threads, "model": source, "tesseract_psm": WORD_PSM}
    available, reason = is_available()
    if not available:
        return {"settings": settings, "figures": {"words/s": skipped(reason), "CER": skipped(reason)}}
    ours_reader = CtcReader(model, charset, torch.device("cpu"))
    tesseract = Tesseract(charset, WORD_PSM, threads=threads)
    speed: dict[str, list[float]] = {"ours": [], "tesseract": []}
    error: dict[str, list[float]] = {"ours": [], "tesseract": []}
    for _ in range(repeats):
        for name, reader in (("ours", ours_reader), ("tesseract", tesseract)):
            start = time.perf_counter()
            preds = reader.read(images)
            speed[name].append(len(images) / (time.perf_counter() - start))
            error[name].append(cer(preds, truths))
    figures = {"words/s": figure(speed["ours"], speed["tesseract"], unit="words/s", ours_label="CRNN",
                                 baseline_label="Tesseract")}
    if source.startswith("untrained"):
        figures["CER"] = skipped(f"no trained model at {paths.model_path(MODEL_ID)}")
    elif min(error["tesseract"]) == 0:
        figures["CER"] = skipped(f"Tesseract read all {len(images)} images without an error: no ratio")
    else:
        figures["CER"] = figure(error["ours"], error["tesseract"], unit="CER", ours_label="CRNN",
                                baseline_label="Tesseract", better="lower")
    return {"settings": settings, "figures": figures}


def _crnn(params: Params) -> tuple[torch.nn.Module, Charset, str]:
    """The pipeline's trained CRNN, or an untrained one of the same shape; its charset; where it came from."""
    path = paths.model_path(MODEL_ID)
    if path.is_file():
        _, model, ckpt = load_model(path, "ocr")
        return model, Charset.from_name(ckpt["config"]["meta"]["charset"]), str(path)
    ocr = OcrConfig.of(params)
    charset = Charset.from_name(ocr.data.charset)
    torch.manual_seed(params.seed)
    model = CRNN(ocr.crnn.model, charset.num_classes, ocr.data.height)
    return model.eval(), charset, "untrained (params.yaml ocr.crnn.model)"
