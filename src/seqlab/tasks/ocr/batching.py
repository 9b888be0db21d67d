"""Variable-width batching for word images: width buckets, the padded batch type, CTC length checks.

Image convention (shared with :mod:`seqlab.tasks.ocr.models`): the uint8 grayscale image (dark text on a
light background) becomes ``ink = 1 - pixel / 255``, so background is ~0 and right padding with 0 is
just more background.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from seqlab.tasks.ocr.data import OcrSplit


@dataclass(frozen=True)
class OcrBatch:
    """Word images padded to one width, with their CTC targets."""

    images: Tensor  # float32 (B, 1, H, Wpad), ink-normalized, zero-padded on the right
    widths: Tensor  # int64 (B,) true widths
    targets: Tensor  # int64 (sum of label lengths,) the labels concatenated
    target_lengths: Tensor  # int64 (B,)
    index: Tensor  # int64 (B,) position of each sample in its split

    @property
    def size(self) -> int:
        return len(self.widths)

    def to(self, device: torch.device) -> OcrBatch:
        return OcrBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})


class WidthBucketSampler(Sampler[list[int]]):
    """Yields batches (lists of indices) of images with similar widths, to keep padding small.

    With ``shuffle``: indices are permuted, cut into chunks of ``batch_size * bucket_batches``, sorted by
    width inside each chunk and cut into batches; the batch order is then shuffled. Only the last chunk
    can give a partial batch, which is kept. Without ``shuffle``: all indices sorted by width (eval).

    Each ``__iter__`` is one pass; the order of pass ``e`` depends only on ``(generator.initial_seed(), e)``.
    The training loop builds a sampler per epoch from a generator seeded by that epoch, so a resumed run
    sees the same batches as an uninterrupted one.
    """

    def __init__(self, widths: Sequence[int] | np.ndarray | Tensor, batch_size: int,
                 generator: torch.Generator | None = None, shuffle: bool = True,
                 bucket_batches: int = 16) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be >= 1")
        self.widths = torch.as_tensor(np.asarray(widths), dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket_batches = bucket_batches
        self.seed = generator.initial_seed() if generator is not None else 0
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.widths) // self.batch_size)

    def _cut(self, order: Tensor) -> list[list[int]]:
        return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            # Stable sort: equal widths keep index order, so eval batches are deterministic.
            yield from self._cut(torch.sort(self.widths, stable=True).indices)
            return
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.widths), generator=gen)
        chunk = self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, len(perm), chunk):
            idx = perm[start:start + chunk]
            batches += self._cut(idx[torch.sort(self.widths[idx], stable=True).indices])
        for i in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[i]


def collate(images: Sequence[np.ndarray], labels: Sequence[Sequence[int]], pad_multiple: int = 4,
            index: Sequence[int] | None = None) -> OcrBatch:
    """Pad a list of uint8 (H, W) images to one batch.

    Args:
        images: uint8 grayscale images, all of the same height, dark text on light background.
        labels: class indices of each image (charset index + 1; 0 is the CTC blank).
        pad_multiple: pad the batch width up to a multiple of this (>= the model's ``downsample``).
        index: each image's position in its split (default 0..B-1), so outputs can be put back in order.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if not images:
        raise ValueError("cannot collate an empty batch")
    heights = {im.shape[0] for im in images}
    if len(heights) != 1 or any(im.ndim != 2 for im in images):
        raise ValueError(f"images must be 2-D with one common height, got heights {sorted(heights)}")
    widths = [im.shape[1] for im in images]
    wpad = -(-max(widths) // pad_multiple) * pad_multiple
    batch = np.zeros((len(images), 1, heights.pop(), wpad), dtype=np.float32)
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = 1.0 - im.astype(np.float32) / 255.0
    flat = [c for lab in labels for c in lab]
    return OcrBatch(
        images=torch.from_numpy(batch),
        widths=torch.tensor(widths, dtype=torch.long),
        targets=torch.tensor(flat, dtype=torch.long),
        target_lengths=torch.tensor([len(lab) for lab in labels], dtype=torch.long),
        index=torch.tensor(range(len(images)) if index is None else index, dtype=torch.long),
    )


def iterate_batches(data: OcrSplit, batch_size: int, generator: torch.Generator | None,
                    pad_multiple: int = 8) -> Iterator[OcrBatch]:
    """Batches of similar widths, shuffled by `generator` (training) or sorted by width when None (eval)."""
    sampler = WidthBucketSampler(data.widths, batch_size, generator, shuffle=generator is not None)
    for idx in sampler:
        yield collate([data.images[i] for i in idx], [data.labels[i] for i in idx], pad_multiple, index=idx)

