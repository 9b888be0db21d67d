"""Training steps idle and beside one busy process, torch's defaults against the project's thread policy.

Each model's training step (`seqlab.training.loop.train_step` on params.yaml's kth, binary_add, OCR bilstm
and crnn models, AdamW, clipping and scheduler included) runs on one fixed batch: a real training batch of
the sequence tasks (drawn as the generate stage draws), random 32 x 160 px images with random 4-10
character labels for OCR. Every measurement is a fresh process (`python -m seqlab.bench.threads`), since
the policy must be in the environment before torch loads OpenMP: "torch defaults" runs with
SEQLAB_THREAD_POLICY=off, "policy" with seqlab.core.threads as the entry point applies it (SEQLAB_THREADS
and SEQLAB_SPINCOUNT from the caller's environment still count, so a setting can be tried by exporting
them); OMP_NUM_THREADS, OMP_WAIT_POLICY and GOMP_SPINCOUNT are removed from both. "Busy" is one
single-threaded Python loop that this bench starts, waits for, and stops after the measurement.

Figures per model: busy/idle steps/s under the policy (target BUSY_TARGET: a fair share of 2 cores beside
one busy process would be 0.5 for a 2-thread step), the same under torch's defaults (no target), and the
policy's idle steps/s against torch's (target IDLE_TARGET: the policy may cost at most ~5% on an idle
machine). A process loaded by something else measures neither: run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqlab.bench.report import figure
from seqlab.core import threads as policy

if TYPE_CHECKING:
    from seqlab.core.config import Params

MODELS = ("kth", "binary_add", "ocr-bilstm", "ocr-crnn")
BUSY_TARGET = 0.45  # busy/idle steps/s under the policy (issue 25)
IDLE_TARGET = 0.95  # policy/defaults idle steps/s: at most ~5% cost
OCR_SIZE = (32, 160)  # image height, width
BUSY_LOOP = "import sys\nprint('busy', flush=True)\nwhile True:\n    pass\n"
VARIANTS = ("torch defaults", "policy")
PER_RUN = ("steps_per_s", "threads", "settle_s")  # what differs between one measurement and the next


def run(params_path: Path, repeats: int, seconds: float, warmup: int) -> dict[str, Any]:
    """The threads section: per model, `repeats` rounds of (idle, busy) x (defaults, policy), each a fresh process."""
    steps: dict[tuple[str, str, str], list[float]] = {}
    seen: dict[str, dict[str, Any]] = {}
    chosen: dict[str, list[dict[str, Any]]] = {}  # per measurement: the thread count it ended with, settling time
    for _ in range(repeats):
        for model in MODELS:
            for variant in VARIANTS:
                for load in ("idle", "busy"):
                    result = measure(params_path, model, variant, load == "busy", seconds, warmup)
                    steps.setdefault((model, variant, load), []).append(result["steps_per_s"])
                    seen.setdefault(variant, {k: v for k, v in result.items() if k not in PER_RUN})
                    chosen.setdefault(f"{model} {variant} {load}", []).append(
                        {k: result[k] for k in PER_RUN if k != "steps_per_s"})
    figures = {}
    for model in MODELS:
        for variant in ("policy", "torch defaults"):
            figures[f"{model} busy/idle, {variant}"] = figure(
                steps[(model, variant, "busy")], steps[(model, variant, "idle")], unit="steps/s",
                ours_label="beside a busy process", baseline_label="idle",
                target=BUSY_TARGET if variant == "policy" else None)
        figures[f"{model} idle, policy vs defaults"] = figure(
            steps[(model, "policy", "idle")], steps[(model, "torch defaults", "idle")], unit="steps/s",
            ours_label="policy", baseline_label="torch defaults", target=IDLE_TARGET)
    settings = {"seconds_per_measurement": seconds, "warmup_steps": warmup, "cores": policy.cores(),
                "ocr_image": list(OCR_SIZE), "busy": "one single-threaded Python loop", "variants": seen,
                "threads_chosen": chosen}
    return {"settings": settings, "figures": figures}


def measure(params_path: Path, model: str, variant: str, busy: bool, seconds: float, warmup: int) -> dict[str, Any]:
    """Steps/s of `model`'s training step in a fresh process under `variant`, beside a busy loop if `busy`."""
    env = {k: v for k, v in os.environ.items() if k not in (*policy.VARS, policy.SET_ENV, policy.SWITCH_ENV)}
    if variant == "torch defaults":
        env[policy.SWITCH_ENV] = "off"
    cmd = [sys.executable, "-m", "seqlab.bench.threads", model, str(seconds), str(warmup), str(params_path)]
    loop = _start_busy_loop() if busy else None
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{model} step ({variant}) failed: {proc.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _start_busy_loop() -> subprocess.Popen[str]:
    """One busy single-threaded process, returned once it runs its loop."""
    loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=subprocess.PIPE, text=True)
    assert loop.stdout is not None
    if loop.stdout.readline().strip() != "busy":
        loop.kill()
        raise RuntimeError("the busy process did not start")
    return loop


# --- the measured process -----------------------------------------------------------------------------


def _child(model: str, seconds: float, warmup: int, params_path: Path) -> dict[str, Any]:
    """Build `model`'s step on one fixed batch, run `warmup` steps, let the thread tuner (policy variant) make
    its first decision as the training loop's would, then count steps for `seconds`."""
    from seqlab.core.config import load_params

    params = load_params(params_path)  # first: a bad params file fails before torch loads (seconds)
    import torch

    from seqlab.training.loop import make_scheduler, train_step
    from seqlab.training.thread_tuner import training_threads

    task, net, batch, train = step_setup(params, model)
    optimizer = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    scheduler = make_scheduler(optimizer, "constant", 1)
    # As the training loop sets it: the task's fixed count or the tuner (torch's defaults: the policy is off).
    tuner = training_threads(task.training_threads, os.environ, 1)

    def step() -> None:
        train_step(task, net, batch, optimizer, scheduler, train.grad_clip).item()
        if tuner:
            tuner.step_done()

    for _ in range(warmup):
        step()
    settle = time.perf_counter()
    while tuner and tuner.decisions == 0:
        step()
    settle = time.perf_counter() - settle
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {"steps_per_s": count / elapsed, "threads": torch.get_num_threads(), "settle_s": round(settle, 2),
            **{k: os.environ.get(k) for k in policy.VARS}}


def step_setup(params: Params, model: str) -> tuple[Any, Any, Any, Any]:
    """(task, model in train mode, one fixed batch, train section) of `model` (one of MODELS), seeded."""
    return _ocr_step(params, model.split("-")[1]) if model.startswith("ocr-") else _sequence_step(params, model)


def _sequence_step(params: Params, name: str) -> tuple[Any, Any, Any, Any]:
    import numpy as np
    import torch

    from seqlab.core.registry import task_class
    from seqlab.core.storage import Arrays
    from seqlab.tasks.sequence.common import SequenceTask

    section = params.section(name).run()
    task = task_class(name).for_training(section, None)
    assert isinstance(task, SequenceTask)
    data_cfg = params.section(name).data
    lo, hi, _ = task.length_range(data_cfg)
    size = section.train.batch_size
    arrays = task.make_split(np.random.default_rng(params.seed), "train", lo, hi, size, data_cfg)
    batch = next(iter(task.batches(task.padded(Arrays(Path("<in memory>"), arrays)), size,
                                   torch.Generator().manual_seed(params.seed))))
    torch.manual_seed(params.seed)
    return task, task.build_model(section.model, {}).train(), batch, section.train


def _ocr_step(params: Params, variant: str) -> tuple[Any, Any, Any, Any]:
    import numpy as np
    import torch

    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.config import OcrConfig
    from seqlab.tasks.ocr.recognizer.batching import collate
    from seqlab.tasks.ocr.recognizer.task import OcrTask

    ocr = OcrConfig.of(params)
    section = ocr.variant(variant)
    charset = Charset.from_name(ocr.data.charset)
    rng = np.random.default_rng(params.seed)
    height, width = OCR_SIZE
    size = section.train.batch_size
    images = [rng.integers(0, 256, (height, width), dtype=np.uint8) for _ in range(size)]
    labels = [list(rng.integers(1, charset.num_classes, int(rng.integers(4, 11)))) for _ in range(size)]
    torch.manual_seed(params.seed)
    task = OcrTask(variant, charset, None, height)
    net = task.build_model(section.model, {"charset": charset.chars, "height": height}).train()
    return task, net, collate(images, labels, pad_multiple=8), section.train


def main() -> None:
    """python -m seqlab.bench.threads MODEL SECONDS WARMUP PARAMS: one JSON line (steps/s, threads, env)."""
    policy.apply()  # before torch loads; does nothing under SEQLAB_THREAD_POLICY=off
    model, seconds, warmup, params_path = sys.argv[1:5]
    print(json.dumps(_child(model, float(seconds), int(warmup), Path(params_path))))


if __name__ == "__main__":
    main()
