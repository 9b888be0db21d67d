"""OCR inference engines on the same images and threads: torch eager, onnxruntime, onnxruntime with dynamic
int8 quantization, and Tesseract.

The model is the OCR benchmark's (models/ocr-crnn.pt, or an untrained CRNN of params.yaml's shape), exported
in memory as `seqlab export` exports it and checked against torch (seqlab.export.onnx.verify). The int8 model
is onnxruntime's `quantize_dynamic` of that graph (QInt8 weights; LSTM, MatMul and Conv quantized, activations
quantized per batch at run time). Every engine reads every image through `CtcReader`, in the same width-
sorted batches, with torch's thread count as onnxruntime's intra-op threads (graph optimisation ALL,
sequential execution) and as Tesseract's engines. Each repeat times the engines one after the other.

Settings record whether onnxruntime's texts are identical to torch's (the speed target holds only at
identical text) and how many texts int8 changes; the int8 CER figure is int8's CER over fp32's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.bench import ocr
from seqlab.bench.report import figure, skipped
from seqlab.core.config import Params
from seqlab.export.onnx import example_batches, to_onnx, verify
from seqlab.export.runtime import OnnxModel
from seqlab.export.session import new_session
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.metrics import cer
from seqlab.tasks.ocr.recognizer.tesseract import Tesseract, is_available

TORCH_TARGET = 1.5  # onnxruntime words/s over torch eager's (issue 19)
TESSERACT_TARGET = 10.0  # onnxruntime words/s over Tesseract's (issue 19)


def quantized(graph: bytes, workdir: Path) -> bytes:
    """onnxruntime's dynamic int8 quantization of `graph`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, out = workdir / "fp32.onnx", workdir / "int8.onnx"
    source.write_bytes(graph)
    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8)
    return out.read_bytes()


def run(params: Params, repeats: int, images: Sequence[np.ndarray], texts: Sequence[str],
        workdir: Path) -> dict[str, Any]:
    model, charset, source = ocr._crnn(params)
    threads = torch.get_num_threads()
    batches = example_batches(model, {"height": OcrConfig.of(params).data.height}, None)
    graph = to_onnx(model, batches[0], source)
    max_diff = verify(model, graph, batches[1:], source)
    readers: dict[str, Any] = {
        "torch": CtcReader(model, charset, torch.device("cpu")),
        "onnxruntime": CtcReader(OnnxModel(new_session(graph, threads)), charset, torch.device("cpu")),
        "onnxruntime int8": CtcReader(OnnxModel(new_session(quantized(graph, workdir), threads)), charset,
                                      torch.device("cpu")),
    }
    available, reason = is_available()
    if available:
        readers["tesseract"] = Tesseract(charset, ocr.WORD_PSM, threads=threads)
    truths = [charset.normalize(t) for t in texts]
    speed: dict[str, list[float]] = {name: [] for name in readers}
    error: dict[str, list[float]] = {name: [] for name in readers}
    outputs: dict[str, list[str]] = {}
    for _ in range(repeats):
        for name, reader in readers.items():
            start = time.perf_counter()
            outputs[name] = reader.read(images)
            speed[name].append(len(images) / (time.perf_counter() - start))
            error[name].append(cer(outputs[name], truths))
    identical = sum(a == b for a, b in zip(outputs["torch"], outputs["onnxruntime"], strict=True))
    changed = sum(a != b for a, b in zip(outputs["onnxruntime"], outputs["onnxruntime int8"], strict=True))
    settings = {"images": len(images), "threads": threads, "model": source, "export_max_abs_diff_vs_torch": max_diff,
                "onnxruntime_texts_identical_to_torch": f"{identical}/{len(images)}",
                "int8_texts_changed": f"{changed}/{len(images)}",
                "cer": {name: values[-1] for name, values in error.items()},
                "session": "graph optimisation ALL, sequential, intra-op threads = torch's"}
    figures = {
        "onnxruntime vs torch eager": figure(speed["onnxruntime"], speed["torch"], unit="words/s",
                                             ours_label="onnxruntime", baseline_label="torch eager",
                                             target=TORCH_TARGET if identical == len(images) else None),
        "onnxruntime vs Tesseract": figure(speed["onnxruntime"], speed["tesseract"], unit="words/s",
                                           ours_label="onnxruntime", baseline_label="Tesseract",
                                           target=TESSERACT_TARGET) if available else skipped(reason),
        "int8 vs fp32 onnxruntime": figure(speed["onnxruntime int8"], speed["onnxruntime"], unit="words/s",
                                           ours_label="onnxruntime int8", baseline_label="onnxruntime fp32"),
    }
    if source.startswith("untrained"):
        figures["int8 CER"] = skipped("no trained model: CER of an untrained model means nothing")
    elif min(error["onnxruntime"]) == 0 or min(error["onnxruntime int8"]) == 0:
        figures["int8 CER"] = skipped("an engine read every image without an error: no ratio")
    else:
        figures["int8 CER"] = figure(error["onnxruntime int8"], error["onnxruntime"], unit="CER",
                                     ours_label="onnxruntime int8", baseline_label="onnxruntime fp32", better="lower")
    return {"settings": settings, "figures": figures}
