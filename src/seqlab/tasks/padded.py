"""In-memory splits of variable-length sequences, right-padded, with vectorised batching.

Whole splits live as padded tensors and a batch is one index gather trimmed to its longest
sequence: no per-sample Python work in the training loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PaddedSplit:
    x: torch.Tensor  # (N, T, ...) right-padded inputs
    lengths: torch.Tensor  # (N,) true lengths
    y: torch.Tensor  # (N,) or (N, T) targets
    group: torch.Tensor  # (N,) the length used for per-length reports

    def __len__(self) -> int:
        return len(self.lengths)


def unflatten(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat concatenation + lengths -> (N, max_len) right-padded with zeros."""
    n, width = len(lengths), int(lengths.max()) if len(lengths) else 0
    out = np.zeros((n, width) + flat.shape[1:], dtype=flat.dtype)
    mask = np.arange(width)[None, :] < lengths[:, None]
    out[mask] = flat
    return out


def flatten_rows(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length rows -> (flat concatenation, lengths), the on-disk layout."""
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.uint8)
    return flat, lengths


def iterate_batches(split: PaddedSplit, batch_size: int, generator: torch.Generator | None) -> Iterator[dict]:
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        lengths = split.lengths[idx]
        t = int(lengths.max())
        y = split.y[idx]
        yield {"x": split.x[idx, :t], "lengths": lengths, "y": y[:, :t] if y.dim() > 1 else y,
               "group": split.group[idx], "size": len(idx)}


def num_batches(split: PaddedSplit, batch_size: int) -> int:
    return (len(split) + batch_size - 1) // batch_size
