"""OCR architectures by measured CER per CPU-minute: several recognizers, the same data, the same budget.

Every candidate trains on the pipeline's own training split (``data/ocr/train.npz``, with the pipeline's
augmentation from params.yaml) for the same budget of process CPU time, one after the other in one run,
and is scored at evenly spaced points of that budget on fixed subsets of the reserved test splits
(families, text and renderer never used in training), with its raw weights and with an exponential
moving average of them (EMA, as Calamari keeps). The learning rate follows a one-cycle schedule over
the CPU budget, so the last point is the end of a full schedule; earlier points are the same run on its
way there, not shorter schedules.

CPU time, not wall time, is the budget: it counts what the candidate used whatever else the machine was
doing (2 busy cores for one wall minute are 2 CPU-minutes). Evaluation is not counted.

Writes ``<out>/results.json`` (each candidate: its model arguments, parameters, training samples/s and
characters/s, reading characters/s and images/s, and the points) and ``<out>/curve.png``; prints a
table. Needs the OCR data: ``dvc repro ocr-generate ocr-reserved`` first.

    python benchmarks/ocr_architectures.py --cpu-minutes 12 --points 4
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from seqlab.core.config import load_params
from seqlab.core.seeding import derive_seed, seed_everything
from seqlab.core.storage import atomic_path, write_json
from seqlab.tasks.ocr import data as ocr_data
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import CRNNConfig
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.images import fit_split
from seqlab.tasks.ocr.recognizer.batching import iterate_batches
from seqlab.tasks.ocr.recognizer.ctc import CtcReader, ctc_loss
from seqlab.tasks.ocr.recognizer.metrics import summarize
from seqlab.tasks.ocr.recognizer.models import CRNN, model_config

# name -> (CRNN arguments, batch size, peak learning rate). All read the same images; input_height
# rescales them inside the model.
CANDIDATES: dict[str, tuple[dict[str, Any], int, float]] = {
    # Today's default: strided 3x3 convs, height collapsed by a conv, one BiLSTM of 128, 2 CTC frames per step.
    "crnn": ({"channels": [16, 32, 64], "hidden_size": 128, "num_layers": 1, "downsample": 4, "pool": "stride",
              "frames_per_step": 2, "dropout": 0.0, "collapse": "conv", "input_height": 0}, 64, 1e-2),
    # Calamari's `def` line model: height 48, conv 40 - maxpool 2x2 - conv 60 - maxpool 2x2, all
    # 60 x 12 features of a column into a BiLSTM of 200.
    "calamari": ({"channels": [40, 60], "hidden_size": 200, "num_layers": 1, "downsample": 4, "pool": "max",
                  "frames_per_step": 1, "dropout": 0.0, "collapse": "flatten", "input_height": 48}, 32, 3e-3),
    # Ours: the CRNN with twice the channels and a 192-unit BiLSTM: the same column resolution, more
    # capacity for 77 classes and unseen families, still a fraction of Calamari's convolution cost.
    "crnn_wide": ({"channels": [32, 64, 128], "hidden_size": 192, "num_layers": 1, "downsample": 4, "pool": "stride",
                   "frames_per_step": 2, "dropout": 0.0, "collapse": "conv", "input_height": 0}, 64, 5e-3),
}
EVAL_SPLITS = {"test_reserved": 400, "test_reserved_degraded": 400, "test_reserved_lines": 200,
               "test_reserved_lines_degraded": 200, "test_reserved_scans": 200}
EMA_DECAY = 0.998
GRAD_CLIP = 5.0
WEIGHT_DECAY = 1e-4


def subset(data: OcrSplit, n: int) -> OcrSplit:
    """The first `n` images (the splits are drawn in random order already)."""
    return OcrSplit(data.images[:n], data.texts[:n], data.labels[:n], data.widths[:n], data.fonts[:n], data.kinds[:n])


def one_cycle(fraction: float) -> float:
    """Learning-rate factor at `fraction` of the budget: linear warm-up over 15% from 1/25, cosine to ~0."""
    if fraction < 0.15:
        return 0.04 + 0.96 * fraction / 0.15
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (fraction - 0.15) / 0.85))) + 1e-3


def score(model: nn.Module, charset: Charset, splits: dict[str, OcrSplit]) -> tuple[dict[str, Any], float, float]:
    """Metrics per split, reading characters/s and images/s over all of them."""
    model.eval()
    reader = CtcReader(model, charset, torch.device("cpu"))
    out: dict[str, Any] = {}
    chars = images = 0
    seconds = 0.0
    for name, data in splits.items():
        t0 = time.perf_counter()
        preds = reader.read(data.images)
        seconds += time.perf_counter() - t0
        s = summarize(preds, data.texts)
        out[name] = {k: round(s[k], 5) for k in ("cer", "cer_nocase", "cer_alnum_nocase", "word_accuracy")}
        chars += sum(len(t) for t in data.texts)
        images += len(data)
    model.train()
    return out, chars / seconds, images / seconds


def run_candidate(name: str, train: OcrSplit, evals: dict[str, OcrSplit], charset: Charset, height: int,
                  augment: Any, cpu_seconds: float, points: int, seed: int,
                  log: Callable[[str], None]) -> dict[str, Any]:
    args, batch_size, lr = CANDIDATES[name]
    seed_everything(derive_seed(seed, "architectures", name))
    model = CRNN(model_config(CRNNConfig, **args), charset.num_classes, height)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    model.train()
    used = 0.0  # process CPU seconds spent training
    wall = 0.0
    samples = chars = 0
    epoch = 0
    result: dict[str, Any] = {"model": args, "batch_size": batch_size, "lr": lr,
                              "parameters": sum(p.numel() for p in model.parameters()), "points": []}
    marks = [cpu_seconds * (i + 1) / points for i in range(points)]
    while marks:
        generator = torch.Generator().manual_seed(derive_seed(seed, "architectures", name, epoch))
        c0, w0 = time.process_time(), time.perf_counter()
        for batch in iterate_batches(train, batch_size, generator, augment_config=augment):
            for group in optimizer.param_groups:
                group["lr"] = lr * one_cycle(used / cpu_seconds)
            log_probs, out_lengths = model(batch.images, batch.widths)
            loss = ctc_loss(log_probs, out_lengths, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            ema.update_parameters(model)
            # The whole iteration counts: collating and augmenting the batch as well as the step.
            c1, w1 = time.process_time(), time.perf_counter()
            used, wall, c0, w0 = used + c1 - c0, wall + w1 - w0, c1, w1
            samples += batch.size
            chars += int(batch.target_lengths.sum())
            if used >= marks[0]:
                marks.pop(0)
                raw, read_cps, read_ips = score(model, charset, evals)
                averaged, _, _ = score(ema.module, charset, evals)
                point = {"cpu_minutes": round(used / 60, 2), "wall_minutes": round(wall / 60, 2),
                         "samples": samples, "epochs": round(samples / len(train), 2),
                         "raw": raw, "ema": averaged}
                result["points"].append(point)
                result.update(train_samples_per_s=round(samples / wall, 1), train_chars_per_s=round(chars / wall, 1),
                              read_chars_per_s=round(read_cps, 1), read_images_per_s=round(read_ips, 1))
                log(f"{name}: {point['cpu_minutes']} CPU-min ({samples} samples): "
                    + ", ".join(f"{s} {point['ema'][s]['cer']:.2%}/{point['raw'][s]['cer']:.2%}" for s in evals))
                c0, w0 = time.process_time(), time.perf_counter()  # evaluation is not training time
                if not marks:
                    break
        epoch += 1
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    """CER against training CPU-minutes, one panel per reserved split, one colour per candidate: raw weights
    solid, their EMA dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(next(iter(results["candidates"].values()))["points"][-1]["ema"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3.4), dpi=100, sharex=True)
    for ax, split in zip(np.atleast_1d(axes), splits, strict=True):
        for i, (name, r) in enumerate(results["candidates"].items()):
            pts, colour = r["points"], f"C{i}"
            minutes = [p["cpu_minutes"] for p in pts]
            ax.plot(minutes, [100 * p["raw"][split]["cer"] for p in pts], marker="o", markersize=3, color=colour,
                    label=name)
            ax.plot(minutes, [100 * p["ema"][split]["cer"] for p in pts], linestyle="--", linewidth=0.8,
                    color=colour, label=f"{name} (EMA)")
        ax.set_title(split.removeprefix("test_"), fontsize=9)
        ax.set_xlabel("training CPU-minutes")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("CER %, case-sensitive (dashed: EMA weights)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-minutes", type=float, default=12.0, help="training budget of each candidate")
    parser.add_argument("--points", type=int, default=4, help="evaluations spread over the budget")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--out", type=Path, default=Path("metrics/ocr-architectures"))
    parser.add_argument("--replot", action="store_true", help="redraw curve.png and the table from results.json")
    args = parser.parse_args()
    if args.replot:
        results = json.loads((args.out / "results.json").read_text())
        plot(results, args.out / "curve.png")
        print(table(results))
        return

    params = load_params()
    data_dir = ocr_data.split_path("train").parent
    meta = ocr_data.read_meta(data_dir)
    charset, height = Charset.from_name(meta["charset"]), int(meta["height"])
    train = ocr_data.load_split(ocr_data.split_path("train"), charset)
    if args.train_limit:
        train = subset(train, args.train_limit)
    # Native-height splits (the scans) reach the models as predict brings any image to the model height.
    evals = {s: fit_split(subset(ocr_data.load_split(ocr_data.split_path(s), charset), n), height)
             for s, n in EVAL_SPLITS.items() if ocr_data.split_path(s).is_file()}
    results: dict[str, Any] = {"cpu_minutes": args.cpu_minutes, "threads": torch.get_num_threads(),
                               "train_images": len(train), "eval_images": {s: len(d) for s, d in evals.items()},
                               "ema_decay": EMA_DECAY, "candidates": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.candidates:
        results["candidates"][name] = run_candidate(name, train, evals, charset, height, params.ocr.augment,
                                                    args.cpu_minutes * 60, args.points, params.seed, print)
        write_json(args.out / "results.json", results)  # after each candidate: a killed run keeps the others
    plot(results, args.out / "curve.png")
    print(table(results))


def table(results: dict[str, Any]) -> str:
    """Markdown: each candidate's final point, EMA and raw weights, and its speed."""
    splits = list(next(iter(results["candidates"].values()))["points"][-1]["ema"])
    head = "| candidate | params | train img/s | train chars/s | read chars/s | " + " | ".join(
        f"{s} CER (EMA / raw)" for s in splits) + " |"
    rows = [head, "|" + "---|" * (5 + len(splits))]
    for name, r in results["candidates"].items():
        last = r["points"][-1]
        cells = [f"{last['ema'][s]['cer']:.2%} / {last['raw'][s]['cer']:.2%}" for s in splits]
        rows.append(f"| {name} | {r['parameters']:,} | {r['train_samples_per_s']} | {r['train_chars_per_s']} | "
                    f"{r['read_chars_per_s']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
