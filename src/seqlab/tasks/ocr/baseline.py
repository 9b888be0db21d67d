"""The Tesseract baseline stage: the OCR engine users would otherwise pick, on our exact test images.

Writes metrics/ocr-tesseract/eval.json with the same keys as the CTC models' eval.json (CER, word
accuracy, 1-NED, words/s), so `dvc metrics show` puts them side by side.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from seqlab import paths
from seqlab.errors import SeqlabError
from seqlab.storage import write_json
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.metrics import summarize
from seqlab.tasks.ocr.report import prediction_grid
from seqlab.tasks.ocr.task import TEST_SPLITS, load_ocr_split, read_meta
from seqlab.tasks.ocr.tesseract import TesseractReader, is_available

MODEL_ID = "ocr-tesseract"


def read_parallel(images: list[np.ndarray], chars: str, psm: int, threads: int) -> list[str]:
    """One Tesseract engine per thread over contiguous chunks (tesserocr releases the GIL while reading)."""
    chunks = [images[i::threads] for i in range(threads)]

    def work(chunk: list[np.ndarray]) -> list[str]:
        with TesseractReader(chars=chars, psm=psm) as reader:
            return reader.read(chunk)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, chunks))
    out = [""] * len(images)
    for t, texts in enumerate(results):
        out[t::threads] = texts
    return out


def run_tesseract_baseline(params: dict[str, Any]) -> dict[str, Any]:
    ok, reason = is_available()
    if not ok:
        raise SeqlabError(f"Tesseract baseline unavailable: {reason}")
    data_dir = paths.data_dir("ocr")
    charset = Charset.from_name(read_meta(data_dir)["charset"])
    threads = torch.get_num_threads()  # the same cores our models get
    metrics: dict[str, Any] = {}
    for split in TEST_SPLITS:
        data = load_ocr_split(data_dir / f"{split}.npz", charset)
        t0 = time.perf_counter()
        raw = read_parallel(data.images, charset.chars, params["ocr"]["tesseract"]["psm"], threads)
        seconds = time.perf_counter() - t0
        preds = [charset.normalize(t) for t in raw]
        s = summarize(preds, data.texts)
        s.pop("by_length")
        metrics[split] = {**s, "words_per_s": len(data) / seconds, "threads": threads}
        if split == "test":
            prediction_grid(paths.metrics_dir(MODEL_ID) / "predictions.png", data.images, preds, data.texts,
                            title="Tesseract on test: errors first")
    write_json(paths.metrics_dir(MODEL_ID) / "eval.json", metrics)
    return metrics
