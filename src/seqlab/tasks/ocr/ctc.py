"""CTC decoding helpers shared by the OCR task (and any other CTC-trained model)."""

from __future__ import annotations

import torch
from torch import Tensor


def greedy_decode(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: argmax per step, collapse repeats, drop blanks.

    Args:
        log_probs: (T, B, C) scores per step (log-softmaxed or not: only the argmax is used).
        lengths: (B,) number of valid steps of each sample; steps >= length are ignored.
        blank: class index of the CTC blank.

    Returns:
        One list of class indices per sample.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, B, C), got shape {tuple(log_probs.shape)}")
    steps, batch, _ = log_probs.shape
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
    # One vectorized pass over the whole batch; only the short per-sample gather runs in Python.
    best = log_probs.detach().argmax(dim=2).t().cpu()  # (B, T)
    lengths = lengths.detach().to("cpu", torch.long).clamp(0, steps)
    new_symbol = torch.ones_like(best, dtype=torch.bool)
    new_symbol[:, 1:] = best[:, 1:] != best[:, :-1]
    valid = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    keep = (new_symbol & (best != blank) & valid).numpy()
    best_np = best.numpy()
    return [best_np[b, keep[b]].tolist() for b in range(batch)]
