"""CRNN training-step GFLOP/s as a fraction of what this machine's sgemm reaches in the same run.

The step is `seqlab.training.loop.train_step` on params.yaml's CRNN (OCR task loss, AdamW, clipping,
onecycle), on one batch of rendered words of similar width (as width bucketing gives), median
of several steps after a warm-up. Its FLOPs are counted once: torch's FlopCounterMode for convs
and matrix products (forward and backward), plus the LSTMs, which it does not see on CPU:
2 * 4H * (I + H) multiply-adds per step and sample forward, three times that with the backward.
Elementwise work (BatchNorm, activations, the CTC loss, the optimizer) counts nothing, as usual.
sgemm is `torch.mm` of two square float32 matrices (2 n^3 FLOPs), median of several products.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seqlab.bench.report import figure
from seqlab.core.config import Params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, collate
from seqlab.tasks.ocr.recognizer.models import CRNN
from seqlab.tasks.ocr.recognizer.task import OcrTask
from seqlab.training.loop import make_scheduler, train_step


def run(params: Params, repeats: int, images: Sequence[np.ndarray], texts: Sequence[str], batch_size: int,
        steps: int, matrix: int) -> dict[str, Any]:
    ocr = OcrConfig.of(params)
    charset = Charset.from_name(ocr.data.charset)
    batch = _batch(images, texts, charset, batch_size)
    section = ocr.crnn
    torch.manual_seed(params.seed)
    model = CRNN(section.model, charset.num_classes, ocr.data.height).train()
    task = OcrTask("crnn", charset)
    optimizer = torch.optim.AdamW(model.parameters(), lr=section.train.lr, weight_decay=section.train.weight_decay)
    scheduler = make_scheduler(optimizer, section.train.scheduler, (steps + 2) * repeats + 2)

    def step() -> None:
        train_step(task, model, batch, optimizer, scheduler, section.train.grad_clip)

    flops = step_flops(model, step)
    a, b = torch.randn(matrix, matrix), torch.randn(matrix, matrix)
    crnn, sgemm = [], []
    for _ in range(repeats):
        crnn.append(flops / median_seconds(step, steps) / 1e9)
        sgemm.append(2 * matrix**3 / median_seconds(lambda: torch.mm(a, b), steps) / 1e9)
    settings = {"batch": list(batch.images.shape), "step_gflop": flops / 1e9, "timed_steps": steps,
                "sgemm_n": matrix, "threads": torch.get_num_threads()}
    return {"settings": settings,
            "figures": {"CRNN step vs sgemm": figure(crnn, sgemm, unit="GFLOP/s", ours_label="CRNN train step",
                                                     baseline_label=f"sgemm {matrix}x{matrix}")}}


def step_flops(model: nn.Module, step: Callable[[], None]) -> float:
    """FLOPs of one call of `step` (forward, backward) on `model`: counted convs and matmuls plus the LSTMs."""
    lstm_flops = 0.0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        nonlocal lstm_flops
        assert isinstance(module, nn.LSTM)
        x = inputs[0]
        steps_times_batch = x.shape[0] * x.shape[1]
        size, hidden = module.input_size, module.hidden_size
        for layer in range(module.num_layers):
            features = size if layer == 0 else hidden * (2 if module.bidirectional else 1)
            lstm_flops += 3 * 2 * 4 * hidden * (features + hidden) * steps_times_batch * (1 + module.bidirectional)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.LSTM)]
    try:
        with FlopCounterMode(display=False) as counter:
            step()
    finally:
        for h in hooks:
            h.remove()
    return counter.get_total_flops() + lstm_flops


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernel choice
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batch(images: Sequence[np.ndarray], texts: Sequence[str], charset: Charset, size: int) -> OcrBatch:
    """`size` images of widths nearest the median, as one padded training batch."""
    widths = np.array([im.shape[1] for im in images])
    near = np.argsort(np.abs(widths - np.median(widths)), kind="stable")[:size]
    labels = [charset.encode(charset.normalize(texts[i])) for i in near]
    return collate([images[i] for i in near], labels, pad_multiple=8)
