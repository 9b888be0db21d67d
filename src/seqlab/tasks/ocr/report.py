"""Pictures a person reads: a grid of test images with prediction and truth, errors first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seqlab.storage import atomic_path


def prediction_grid(path: str | Path, images: Sequence[np.ndarray], preds: Sequence[str], truths: Sequence[str],
                    title: str, limit: int = 60, columns: int = 4, cell_width: int = 240) -> None:
    """Write a PNG grid: each cell shows an image, then 'pred' (green if right, red if wrong) and 'truth'."""
    order = sorted(range(len(images)), key=lambda i: (preds[i] == truths[i], i))[:limit]
    font = ImageFont.load_default(size=13)
    img_h = max((images[i].shape[0] for i in order), default=32)
    cell_h = img_h + 36
    rows = max(1, -(-len(order) // columns))
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_h + 28), "white")
    draw = ImageDraw.Draw(sheet)
    errors = sum(p != t for p, t in zip(preds, truths))
    draw.text((6, 6), f"{title} ({errors} errors in {len(truths)})", fill="black", font=font)
    for n, i in enumerate(order):
        x, y = (n % columns) * cell_width + 4, (n // columns) * cell_h + 28
        im = Image.fromarray(images[i])
        if im.width > cell_width - 8:
            im = im.resize((cell_width - 8, im.height))
        sheet.paste(im.convert("RGB"), (x, y))
        ok = preds[i] == truths[i]
        draw.text((x, y + img_h + 2), f"pred: {preds[i]}", fill=(0, 128, 0) if ok else (200, 0, 0), font=font)
        draw.text((x, y + img_h + 18), f"true: {truths[i]}", fill=(60, 60, 60), font=font)
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
