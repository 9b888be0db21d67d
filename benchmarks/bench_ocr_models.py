"""Speed (and optionally accuracy) of the OCR models vs. Tesseract on synthetic word images.

    python benchmarks/bench_ocr_models.py                   # speed table, ~1-2 min on 2 cores
    python benchmarks/bench_ocr_models.py --train-seconds 240 --variants crnn   # + short training run

Words come from trdg's English dictionary and are drawn with trdg's Latin fonts straight through PIL
(no trdg generator: it needs compatibility fixes), black on white, scaled to height 32. Fonts that draw
lowercase as capitals are left out so labels stay case-exact. Numbers depend on what else is running on
the machine: run it on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from seqlab.bench.compute import median_seconds
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, WidthBucketSampler, collate
from seqlab.tasks.ocr.recognizer.ctc import greedy_decode
from seqlab.tasks.ocr.recognizer.metrics import summarize
from seqlab.tasks.ocr.recognizer.models import MODELS
from seqlab.tasks.ocr.recognizer.tesseract import TesseractReader, is_available
from seqlab.tasks.ocr.synth.fonts import draws_lowercase_as_capitals
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

CHARS = string.ascii_letters + string.digits
HEIGHT = 32

# (variant, model arguments): the first of each variant is the model class's defaults.
CONFIGS: list[tuple[str, dict]] = [
    ("crnn", {}),
    ("crnn", {"pool": "max"}),
    ("crnn", {"channels": [32, 64, 128, 128]}),
    ("crnn", {"num_layers": 2}),
    ("crnn", {"channels": [16, 32, 64], "hidden_size": 96}),
    ("bilstm", {}),
    ("bilstm", {"stride": 2}),
    ("bilstm", {"stride": 1}),
    ("bilstm", {"stride": 1, "num_layers": 2}),
    ("bilstm", {"hidden_size": 256}),
]


def build(variant: str, sizes: dict) -> torch.nn.Module:
    return MODELS[variant](len(CHARS) + 1, HEIGHT, **sizes)


def load_words(n: int, rng: random.Random) -> list[str]:
    try:
        root = trdg_dir()
    except ModuleNotFoundError:
        return ["".join(rng.choices(CHARS, k=rng.randint(2, 12))) for _ in range(n)]
    with open(root / "dicts" / "en.txt", encoding="utf-8") as f:
        words = [w for w in f.read().split() if re.fullmatch(r"[A-Za-z0-9]{2,15}", w)]
    return rng.sample(words, n)


def load_fonts(size: int = 40) -> list[ImageFont.FreeTypeFont]:
    """trdg's Latin fonts, without those that draw lowercase as capitals (the package's check)."""
    try:
        paths = sorted((trdg_dir() / "fonts" / "latin").glob("*.tt[fc]"))
    except ModuleNotFoundError:
        paths = []
    fonts = [ImageFont.truetype(str(p), size) for p in paths if not draws_lowercase_as_capitals(p)]
    return fonts or [ImageFont.load_default(size=size)]


def render(word: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    """Black-on-white uint8 image of height HEIGHT; the font's full ascent+descent is kept so the
    baseline sits at the same place for every word of that font (as trdg does)."""
    ascent, descent = font.getmetrics()
    x0, _, x1, _ = font.getbbox(word)
    im = Image.new("L", (x1 - min(x0, 0) + 4, ascent + descent), 255)
    ImageDraw.Draw(im).text((2 - min(x0, 0), 0), word, font=font, fill=0)
    width = max(4, round(im.width * HEIGHT / im.height))
    return np.asarray(im.resize((width, HEIGHT), Image.BILINEAR))


def make_data(n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    rng = random.Random(seed)
    fonts = load_fonts()
    words = load_words(n, rng)
    return [render(w, rng.choice(fonts)) for w in words], words


def encode(word: str) -> list[int]:
    return [CHARS.index(c) + 1 for c in word]


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i - 1] for i in ids)


def speed(variant: str, sizes: dict, batch: OcrBatch, steps: int) -> tuple[int, float, float]:
    torch.manual_seed(0)
    model = build(variant, sizes)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    bsz = len(batch.widths)

    def train_step() -> None:
        log_probs, lengths = model(batch.images, batch.widths)
        loss = ctc(log_probs, batch.targets, lengths, batch.target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # The suite's timer (seqlab.bench.compute.median_seconds): a warm-up step (allocator, oneDNN kernel
    # selection), then the median of `steps` single-step timings.
    model.train()
    train_rate = bsz / median_seconds(train_step, steps)
    model.eval()
    with torch.inference_mode():
        infer_rate = bsz / median_seconds(lambda: greedy_decode(*model(batch.images, batch.widths)), steps)
    return params, train_rate, infer_rate


def train_eval(variant: str, sizes: dict, seconds: float, n_train: int, seed: int,
               lr: float = 2e-3, batch_size: int = 64) -> None:
    print(f"rendering {n_train} + 1000 words ...", flush=True)
    t0 = time.perf_counter()
    images, words = make_data(n_train + 1000, seed)
    print(f"  {len(images) / (time.perf_counter() - t0):.0f} img/s", flush=True)
    tr_im, tr_w, va_im, va_w = images[:n_train], words[:n_train], images[n_train:], words[n_train:]
    torch.manual_seed(seed)
    model = build(variant, sizes)
    labels = [encode(w) for w in tr_w]
    widths = torch.tensor([im.shape[1] for im in tr_im])
    # Words too narrow for their label under CTC get an infinite loss, which zero_infinity zeroes.
    sampler = WidthBucketSampler(widths, batch_size, torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    t0, step, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < seconds:
        for idx in sampler:
            frac = (time.perf_counter() - t0) / seconds
            if frac >= 1:
                break
            for g in opt.param_groups:  # time-based linear decay: the budget is seconds, not steps
                g["lr"] = lr * max(0.05, 1 - frac)
            b = collate([tr_im[i] for i in idx], [labels[i] for i in idx])
            model.train()
            log_probs, lengths = model(b.images, b.widths)
            loss = ctc(log_probs, b.targets, lengths, b.target_lengths)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            if step % 200 == 0:
                print(f"  step {step} epoch {epoch} {time.perf_counter() - t0:.0f}s loss {loss.item():.3f}",
                      flush=True)
        epoch += 1
    model.eval()
    preds: list[str] = []
    order = list(WidthBucketSampler([im.shape[1] for im in va_im], 128, shuffle=False))
    truths = [va_w[i] for idx in order for i in idx]
    with torch.inference_mode():
        for idx in order:
            b = collate([va_im[i] for i in idx], [encode(va_w[i]) for i in idx])
            preds += [decode(p) for p in greedy_decode(*model(b.images, b.widths))]
    m = summarize(preds, truths)
    print(f"{variant} {sizes or 'defaults'}: {step} steps ({step * batch_size / seconds:.0f} samples/s, lr {lr:g}, batch {batch_size}) "
          f"val CER {m['cer']:.4f} nocase {m['cer_nocase']:.4f} word-acc {m['word_accuracy']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median kept)")
    ap.add_argument("--variants", nargs="+", default=["crnn", "bilstm"])
    ap.add_argument("--train-seconds", type=float, default=0, help="also train each variant this long and report val CER")
    ap.add_argument("--train-words", type=int, default=24000)
    ap.add_argument("--train-sizes", type=json.loads, default={}, help='JSON model arguments, e.g. \'{"hidden_size": 96}\'')
    ap.add_argument("--lr", type=float, default=2e-3, help="peak lr of the training run (linear decay)")
    ap.add_argument("--batch-size", type=int, default=64, help="batch size of the training run")
    ap.add_argument("--skip-speed", action="store_true", help="only the training run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    if args.skip_speed:
        for variant in args.variants:
            train_eval(variant, args.train_sizes, args.train_seconds, args.train_words, args.seed,
                       args.lr, args.batch_size)
        return
    # One batch of 64 real words around width 100 (median trdg word width at height 32 is ~92).
    images, words = make_data(2000, args.seed)
    near = sorted(range(len(images)), key=lambda i: abs(images[i].shape[1] - 100))[:64]
    images, words = [images[i] for i in near], [words[i] for i in near]
    batch = collate(images, [encode(w) for w in words])
    print(f"batch: 64 x 1 x {HEIGHT} x {batch.images.shape[3]} "
          f"(widths {batch.widths.min().item()}-{batch.widths.max().item()})\n")

    print(f"{'variant':8} {'sizes':38} {'params':>9} {'train/s':>8} {'infer/s':>8}")
    for variant, sizes in CONFIGS:
        if variant in args.variants:
            params, tr, inf = speed(variant, sizes, batch, args.steps)
            print(f"{variant:8} {str(sizes or 'defaults'):38} {params:>9,} {tr:>8.0f} {inf:>8.0f}", flush=True)

    ok, reason = is_available()
    if ok:
        with TesseractReader(CHARS) as reader:
            preds = reader.read(images)
            rate = len(images) / median_seconds(lambda: reader.read(images), 3)
        m = summarize(preds, words)
        print(f"{'tesseract':8} {'psm 8, whitelist':38} {'':>9} {'':>8} {rate:>8.0f}"
              f"   (CER {m['cer']:.3f} on these 64)")
    else:
        print(f"tesseract skipped: {reason}")

    if args.train_seconds > 0:  # defaults unless --train-sizes
        for variant in args.variants:
            print()
            train_eval(variant, args.train_sizes, args.train_seconds, args.train_words, args.seed,
                       args.lr, args.batch_size)


if __name__ == "__main__":
    main()
