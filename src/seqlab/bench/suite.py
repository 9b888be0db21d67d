"""Run the seven benchmarks and write metrics/bench.json (see seqlab.bench.report for its shape).

The threads section runs each measurement in a fresh child process (its thread settings must be in place
before torch loads); the others run in this process, under the project's thread policy.
Sizes: the full run takes ~10 minutes on 2 idle cores (the threads section ~5 of them: 48 child processes); `--quick` (a smoke test: one repeat, tiny
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

from seqlab.bench import compute, inference, ocr, pipeline, rendering, threads, training
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
    thread_seconds: float  # each threads-section measurement: steps counted for this long, after a warm-up
    thread_warmup: int


FULL = Sizes(repeats=3, train_samples=20000, seed_samples=1000, images=3000, ocr_images=1000, crnn_batch=64,
             timed_steps=10, sgemm_n=1024, thread_seconds=3.0, thread_warmup=3)
QUICK = Sizes(repeats=1, train_samples=1000, seed_samples=50, images=40, ocr_images=40, crnn_batch=8, timed_steps=2,
              sgemm_n=256, thread_seconds=0.05, thread_warmup=1)


def run_suite(params: Params, params_path: Path, sizes: Sizes, quick: bool, project: Path,
              out: Path) -> dict[str, Any]:
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
        _progress("threads: training steps idle and beside a busy process, torch defaults vs the policy")
        sections["threads"] = threads.run(params_path, sizes.repeats, sizes.thread_seconds, sizes.thread_warmup)
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
