"""Variable-width batching for word and line images: width buckets, the padded batch type, augmented training batches.

Image convention (shared with :mod:`seqlab.tasks.ocr.recognizer.models`): every batch, in training, evaluation and
predict alike, goes through :func:`seqlab.tasks.ocr.normalize.normalize`, which turns the grayscale
images (any polarity and contrast) into ink: text ~1, background ~0, right padding exactly 0. Training
batches are augmented (:mod:`seqlab.tasks.ocr.recognizer.augment`) before that normalisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from seqlab.core.seeding import derive_seed
from seqlab.tasks.ocr.config import AugmentConfig
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.normalize import normalize, pad_margins
from seqlab.tasks.ocr.recognizer.augment import augment, sample_params

MARGIN = 0.25  # ground left and right of every word, in image heights (see normalize.pad_margins)
MIN_COLUMNS_PER_CTC_STEP = 4  # augmentation never squeezes a word below this many columns per CTC step
# Batches per width-sorted chunk. Padded columns cost as much as real ones; on the rendered training widths,
# a quarter of them lines, 16 left 19% of the columns as padding, 64 leaves 6% (words only: 8% -> 3%).
BUCKET_BATCHES = 64


@dataclass(frozen=True)
class OcrBatch:
    """Word and line images padded to one width, with their CTC targets."""

    images: Tensor  # float32 (B, 1, H, Wpad), normalised ink (text ~1, ground ~0), zero-padded on the right
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
                 bucket_batches: int = BUCKET_BATCHES) -> None:
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
    """Pad a list of uint8 (H, W) images to one normalised batch.

    Args:
        images: uint8 grayscale images, all of the same height.
        labels: class indices of each image (charset index + 1; 0 is the CTC blank).
        pad_multiple: pad the batch width up to a multiple of this (>= the model's ``downsample``).
        index: each image's position in its split (default 0..B-1), so outputs can be put back in order.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    gray, widths = _paper(images, pad_multiple)
    return _ink_batch(gray, widths, labels, _positions(index, len(images)), pad_multiple)


def _paper(images: Sequence[np.ndarray], pad_multiple: int) -> tuple[Tensor, Tensor]:
    """uint8 (H, W) images of one height as float (B, 1, H, Wpad) grey levels in [0, 1], white paper beyond each
    width, and their widths."""
    if not images:
        raise ValueError("cannot collate an empty batch")
    heights = {im.shape[0] for im in images}
    if len(heights) != 1 or any(im.ndim != 2 for im in images):
        raise ValueError(f"images must be 2-D with one common height, got heights {sorted(heights)}")
    wpad = -(-max(im.shape[1] for im in images) // pad_multiple) * pad_multiple
    batch = np.ones((len(images), 1, heights.pop(), wpad), dtype=np.float32)
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = im.astype(np.float32) / 255.0
    return torch.from_numpy(batch), torch.tensor([im.shape[1] for im in images], dtype=torch.long)


def _positions(index: Sequence[int] | None, size: int) -> Tensor:
    return torch.tensor(range(size) if index is None else index, dtype=torch.long)


def _ink_batch(gray: Tensor, widths: Tensor, labels: Sequence[Sequence[int]], positions: Tensor,
               pad_multiple: int) -> OcrBatch:
    """Grey levels (B, 1, H, W) as the model reads them (normalised ink with margins), with the CTC targets."""
    flat = [c for lab in labels for c in lab]
    ink, widths = pad_margins(normalize(gray, widths), widths, round(MARGIN * gray.shape[2]), pad_multiple)
    return OcrBatch(
        images=ink,
        widths=widths,
        targets=torch.tensor(flat, dtype=torch.long),
        target_lengths=torch.tensor([len(lab) for lab in labels], dtype=torch.long),
        index=positions,
    )


def ctc_min_length(label: Sequence[int]) -> int:
    """Fewest CTC steps that can emit ``label``: one per symbol plus a blank between equal neighbours."""
    return len(label) + sum(a == b for a, b in zip(label[:-1], label[1:], strict=True))


def iterate_batches(data: OcrSplit, batch_size: int, generator: torch.Generator | None,
                    pad_multiple: int = 8, augment_config: AugmentConfig | None = None,
                    shard: tuple[int, int] = (0, 1)) -> Iterator[OcrBatch]:
    """Batches of similar widths, shuffled by `generator` (training) or sorted by width when None (eval).

    With `augment_config` (enabled) and a generator, every batch is augmented before normalisation: a sample's
    augmentation depends on (the generator's seed, its index in the split), the batch's noise on (seed, batch
    number) only. The training loop seeds the generator per epoch, so the augmentation is fresh each epoch and
    identical on a resumed run. `shard` (rank, world): only batches rank, rank + world... of that sequence
    (seqlab.training.distributed).
    """
    sampler = WidthBucketSampler(data.widths, batch_size, generator, shuffle=generator is not None)
    seed = generator.initial_seed() if generator is not None else 0
    augmenting = augment_config is not None and augment_config.enabled and generator is not None
    config = augment_config if augmenting else None
    rank, world = shard
    for number, idx in enumerate(sampler):
        if number % world != rank:
            continue
        images, labels = [data.images[i] for i in idx], [data.labels[i] for i in idx]
        if config is None:
            yield collate(images, labels, pad_multiple, index=idx)
            continue
        gray, widths = _paper(images, pad_multiple)
        positions = _positions(idx, len(idx))
        need = torch.tensor([MIN_COLUMNS_PER_CTC_STEP * ctc_min_length(lab) for lab in labels])
        gray, widths = augment(gray, widths, sample_params(seed, positions),
                               torch.Generator().manual_seed(derive_seed(seed, "augment", number)),
                               config, min_widths=need, pad_multiple=pad_multiple)
        yield _ink_batch(gray, widths, labels, positions, pad_multiple)
