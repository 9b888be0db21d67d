"""Run the six benchmarks in one process and write metrics/bench.json (see seqlab.bench.report for its shape).

Sizes: the full run takes ~5 minutes on 2 idle cores; `--quick` (a smoke test: one repeat, tiny
sizes, under a minute) checks that everything runs, and its ratios mean little (at 40 images the
pool start-up dominates rendering, for instance).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.bench import compute, inference, ocr, pipeline, rendering, training
from seqlab.bench.report import check_report, new_report, table
from seqlab.core.config import Params
from seqlab.core.storage import write_json


@dataclass(frozen=True)
class Sizes:
    repeats: int
    train_samples: int  # one epoch of the batched loop
    seed_samples: int  # iterations of the batch-1 loop
    images: int  # rendered per run: pool start-up (~0.5 s) must be small beside the work, as in the generate stage
    ocr_images: int  # the first of them, read by both OCR engines
    crnn_batch: int
    timed_steps: int  # CRNN steps and sgemm products per repeat (median)
    sgemm_n: int


FULL = Sizes(repeats=3, train_samples=20000, seed_samples=1000, images=3000, ocr_images=1000, crnn_batch=64,
             timed_steps=10, sgemm_n=1024)
QUICK = Sizes(repeats=1, train_samples=1000, seed_samples=50, images=40, ocr_images=40, crnn_batch=8, timed_steps=2,
              sgemm_n=256)


def run_suite(params: Params, sizes: Sizes, quick: bool, project: Path, out: Path) -> dict[str, Any]:
    """Measure every figure, check the report, write it to `out` and print the table."""
    report = new_report(quick, sizes.repeats)
    sections = report["sections"]
    with tempfile.TemporaryDirectory(prefix="seqlab-bench-") as tmp:
        work = Path(tmp)
        _progress("training: batched loop vs seed-style loop")
        sections["training"] = training.run(params, sizes.repeats, sizes.train_samples, sizes.seed_samples)
        _progress("rendering: 2 workers vs 1, and vs trdg's command line")
        sections["rendering"], images, texts = rendering.run(params, sizes.repeats, sizes.images, work)
        _progress("ocr: CRNN vs Tesseract")
        sections["ocr"] = ocr.run(params, sizes.repeats, images[:sizes.ocr_images], texts[:sizes.ocr_images])
        _progress("inference: torch eager vs onnxruntime (fp32, int8) vs Tesseract")
        sections["inference"] = inference.run(params, sizes.repeats, images[:sizes.ocr_images],
                                              texts[:sizes.ocr_images], work)
        _progress("compute: CRNN training step vs sgemm")
        sections["compute"] = compute.run(params, sizes.repeats, images, texts, sizes.crnn_batch, sizes.timed_steps,
                                          sizes.sgemm_n)
        _progress("pipeline: no-op dvc repro vs DVC's floor")
        sections["pipeline"] = pipeline.run(project, sizes.repeats, work)
    report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    check_report(report)
    write_json(out, report)
    print("\n".join(table(report)))
    print(f"\nwritten to {out}", file=sys.stderr)
    return report


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
