"""Reading text with a CTC-trained model: the loss, greedy decoding, and the model as a recognizer.

Class 0 is the CTC blank; class ``i + 1`` is the charset's ``i``-th character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, iterate_batches

READ_BATCH = 128  # images per forward pass when reading; batches are width-sorted, so padding stays small


def ctc_loss(log_probs: Tensor, out_lengths: Tensor, batch: OcrBatch, reduction: str = "mean") -> Tensor:
    """CTC loss of a batch; a label that cannot fit its image's output length adds 0, not infinity."""
    return F.ctc_loss(log_probs, batch.targets, out_lengths, batch.target_lengths, blank=0,
                      reduction=reduction, zero_infinity=True)


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


class CtcReader:
    """A CTC model (in eval mode) as a recognizer: uint8 word or line images in, text out.

    Images go through in width-sorted batches of :data:`READ_BATCH` (the order the task's validation
    has always used, so the figures do not depend on which caller reads) and come back in input order.
    `decode` turns a batch's (T, B, C) scores and lengths into class indices: greedy by default, or what
    params.yaml's `ocr.decode` asks for (seqlab.tasks.ocr.recognizer.decoding).
    """

    def __init__(self, model: nn.Module, charset: Charset, device: torch.device,
                 decode: Callable[[Tensor, Tensor], list[list[int]]] | None = None) -> None:
        self.model, self.charset, self.device = model, charset, device
        self.decode = decode or greedy_decode

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        return self._read(OcrSplit.unlabelled(images), with_loss=False)[0]

    def read_with_loss(self, data: OcrSplit) -> tuple[list[str], float]:
        """The texts of a labelled split and its CTC loss per label character (validation's val_loss)."""
        return self._read(data, with_loss=True)

    @torch.no_grad()
    def _read(self, data: OcrSplit, with_loss: bool) -> tuple[list[str], float]:
        texts: list[str] = [""] * len(data)
        loss_sum = 0.0
        for batch in iterate_batches(data, READ_BATCH, None):
            batch = batch.to(self.device)
            log_probs, out_lengths = self.model(batch.images, batch.widths)
            if with_loss:
                loss_sum += ctc_loss(log_probs, out_lengths, batch, reduction="sum").item()
            for i, seq in zip(batch.index.tolist(), self.decode(log_probs.cpu(), out_lengths.cpu()), strict=True):
                texts[i] = self.charset.normalize(self.charset.decode(seq))  # a line's spaces as its labels have them
        return texts, loss_sum / max(1, sum(len(label) for label in data.labels))
