"""Cost of on-the-fly OCR augmentation + normalisation against a CRNN training step, and a contact sheet.

    python benchmarks/bench_augment.py                    # 20-80 s on 2 cores, depending on load
    python benchmarks/bench_augment.py --threads 1 --sheet /tmp/ocr_augment_contact_sheet.png

A batch is 64 words drawn with trdg's Latin fonts straight through Pillow (black on white, height 32,
widths ~100-180 px). Times are the median of ``--repeats`` runs, which on a shared machine is less
disturbed than the mean. The contact sheet shows each word as rendered, then augmented in successive
epochs, then what the model receives (the normalised ink of two of those, drawn dark on light).
"""

from __future__ import annotations

import argparse
import random
import string
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from seqlab.bench.compute import median_seconds
from seqlab.core.config import load_params
from seqlab.tasks.ocr.config import CRNNConfig
from seqlab.tasks.ocr.normalize import normalize
from seqlab.tasks.ocr.recognizer.augment import augment, sample_params
from seqlab.tasks.ocr.recognizer.models import CRNN, model_config
from seqlab.tasks.ocr.synth.fonts import draws_lowercase_as_capitals
from seqlab.tasks.ocr.synth.trdg_compat import trdg_dir

CHARS = string.ascii_lowercase + string.digits
HEIGHT = 32
BATCH = 64


def fonts() -> list[ImageFont.FreeTypeFont]:
    """trdg's Latin fonts, without those that draw lowercase as capitals (the package's check)."""
    paths = sorted((trdg_dir() / "fonts" / "latin").glob("*.tt[fc]"))
    paths = [p for p in paths if not draws_lowercase_as_capitals(p)]
    return [ImageFont.truetype(str(p), 40) for p in paths] or [ImageFont.load_default(size=40)]


def render(word: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    """Black-on-white uint8 word at HEIGHT rows, the font's full ascent + descent kept (as trdg does)."""
    ascent, descent = font.getmetrics()
    x0, _, x1, _ = font.getbbox(word)
    im = Image.new("L", (x1 - min(x0, 0) + 8, ascent + descent), 255)
    ImageDraw.Draw(im).text((4 - min(x0, 0), 0), word, font=font, fill=0)
    return np.asarray(im.resize((max(4, round(im.width * HEIGHT / im.height)), HEIGHT), Image.Resampling.BILINEAR))


def make_batch(rng: random.Random, n: int = BATCH) -> tuple[list[np.ndarray], list[str]]:
    """`n` random words whose images are 100-180 px wide."""
    faces, images, words = fonts(), [], []
    while len(images) < n:
        word = "".join(rng.choices(CHARS, k=rng.randint(6, 12)))
        image = render(word, rng.choice(faces))
        if 100 <= image.shape[1] <= 180:
            images.append(image)
            words.append(word)
    return images, words


def pad(images: list[np.ndarray], multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> float (B, 1, H, W) brightness in [0, 1], white beyond each width, and widths."""
    width = -(-max(im.shape[1] for im in images) // multiple) * multiple
    gray = np.ones((len(images), 1, HEIGHT, width), dtype=np.float32)
    for i, im in enumerate(images):
        gray[i, 0, :, : im.shape[1]] = im / 255.0
    return torch.from_numpy(gray), torch.tensor([im.shape[1] for im in images])


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return 1000 * median_seconds(fn, repeats)  # the suite's timer: one warm-up, then the median


def contact_sheet(path: str, images: list[np.ndarray], gray: torch.Tensor, widths: torch.Tensor,
                  rows: int, epochs: int, seed: int) -> None:
    outputs = []
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        outputs.append(augment(gray[:rows], widths[:rows], sample_params(seed * 1000 + epoch, range(rows)), gen,
                               CONFIG))
    normalised = [(normalize(g, w), w) for g, w in outputs[:2]]
    lines = []
    for i in range(rows):
        line = [images[i]]
        line += [(g[i, 0, :, : w[i]].numpy() * 255).astype(np.uint8) for g, w in outputs]
        line += [((1 - ink[i, 0, :, : w[i]].numpy()) * 255).astype(np.uint8) for ink, w in normalised]
        lines.append(line)
    col_w = [max(line[j].shape[1] for line in lines) + 6 for j in range(len(lines[0]))]
    sheet = np.full((rows * (HEIGHT + 4) + 2, sum(col_w) + 4 * 2), 110, dtype=np.uint8)
    for r, line in enumerate(lines):
        x = 2
        for j, im in enumerate(line):
            if j in (1, epochs + 1):
                x += 4  # gaps between the original, the augmented and the normalised columns
            sheet[2 + r * (HEIGHT + 4): 2 + r * (HEIGHT + 4) + HEIGHT, x: x + im.shape[1]] = im
            x += col_w[j]
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.Resampling.NEAREST).save(path)


CONFIG = load_params().ocr.augment  # the pipeline's knobs (run from the repository root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per measurement")
    ap.add_argument("--seed", type=int, default=0, help="seed of words, fonts and augmentation")
    ap.add_argument("--sheet", default="/tmp/ocr_augment_contact_sheet.png", help="contact sheet PNG ('' to skip)")
    ap.add_argument("--sheet-rows", type=int, default=24, help="words on the contact sheet")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, words = make_batch(random.Random(args.seed))
    gray, widths = pad(images)
    params = sample_params(args.seed, range(BATCH))

    def augment_step() -> tuple[torch.Tensor, torch.Tensor]:
        out, new_widths = augment(gray, widths, params, torch.Generator().manual_seed(1), CONFIG)
        return normalize(out, new_widths), new_widths

    torch.manual_seed(args.seed)
    model = CRNN(model_config(CRNNConfig), len(CHARS) + 1, HEIGHT)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    targets = torch.tensor([CHARS.index(c) + 1 for w in words for c in w])
    target_lengths = torch.tensor([len(w) for w in words])
    ink, new_widths = augment_step()

    def train_step() -> None:
        log_probs, lengths = model(ink, new_widths)
        loss = ctc(log_probs, targets, lengths, target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    ms = {
        "sample_params": median_ms(lambda: sample_params(args.seed, range(BATCH)), args.repeats),
        "normalize (eval path)": median_ms(lambda: normalize(gray, widths), args.repeats),
        "augment + normalize": median_ms(augment_step, args.repeats),
        "CRNN train step": median_ms(train_step, args.repeats),
    }
    print(f"batch of {BATCH} images 1x{HEIGHT}x{int(widths.min())}-{int(widths.max())} px, "
          f"{torch.get_num_threads()} torch threads, median of {args.repeats}")
    for name, value in ms.items():
        print(f"  {name:24s} {value:8.1f} ms")
    print(f"  augmentation costs {ms['augment + normalize'] / ms['CRNN train step']:.0%} of a training step "
          f"(output widths {int(new_widths.min())}-{int(new_widths.max())} px)")
    if args.sheet:
        contact_sheet(args.sheet, images, gray, widths, min(args.sheet_rows, BATCH), epochs=5, seed=args.seed)
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
