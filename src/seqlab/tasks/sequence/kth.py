"""kth (seq2one): read a variable-length digit sequence and output the digit at position k (1-based).

Example: 9 7 0 5 6 with k=3 -> 0. Inputs are one-hot (10 classes per step). Besides the usual
train/val/test splits (lengths in [min_len, max_len]) a generalization split holds lengths from
max_len+1 to generalization_max_len, to show whether the model learned the rule or the lengths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.core.sections import Section
from seqlab.core.storage import Arrays, load_arrays
from seqlab.tasks.sequence.common import (
    PaddedSplit,
    SequenceBatch,
    SequenceClassifier,
    SequenceTask,
    unflatten,
)

if TYPE_CHECKING:
    from seqlab.tasks.sequence.config import KthDataConfig


def make_sequences(rng: np.random.Generator, n: int, min_len: int, max_len: int, k: int) -> dict[str, np.ndarray]:
    """n digit sequences with lengths uniform in [min_len, max_len]; target = digit at 1-based position k."""
    lengths = rng.integers(min_len, max_len + 1, size=n).astype(np.int32)
    digits = rng.integers(0, 10, size=int(lengths.sum())).astype(np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return {"digits": digits, "lengths": lengths, "targets": digits[starts + k - 1].astype(np.int64)}


def parse_digits(line: str) -> list[int]:
    """'9 7 0 5 6' or '97056' -> [9, 7, 0, 5, 6]; anything but digits and blanks is an error."""
    text = "".join(line.split())
    if not text:
        raise ValueError("empty line")
    bad = sorted({c for c in text if c not in "0123456789"})
    if bad:
        raise ValueError(f"not a digit sequence (unexpected {''.join(bad)!r})")
    return [int(c) for c in text]


class KthTask(SequenceTask):
    name = "kth"
    input_size = 10  # one-hot digits
    eval_batch_size = 1024
    headline = "accuracy"
    headline_metric, headline_mode = "test.accuracy", "max"
    group_column = "length"
    range_unit = "len"
    plot_title = "kth: accuracy by sequence length"
    plot_ylabel = "accuracy"

    @classmethod
    def length_range(cls, data: KthDataConfig) -> tuple[int, int, int]:
        return data.min_len, data.max_len, data.generalization_max_len

    @classmethod
    def make_split(cls, rng: np.random.Generator, split: str, lo: int, hi: int, n: int,
                   data: KthDataConfig) -> dict[str, np.ndarray]:
        return {"k": np.array(data.k), **make_sequences(rng, n, lo, hi, data.k)}

    def padded(self, arrays: Arrays) -> PaddedSplit:
        lengths = arrays["lengths"].astype(np.int64)
        return PaddedSplit(x=torch.from_numpy(unflatten(arrays["digits"], lengths).astype(np.int64)),
                           lengths=torch.from_numpy(lengths), y=torch.from_numpy(arrays["targets"]),
                           group=torch.from_numpy(lengths))

    def encode_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x, 10).float()

    def data_meta(self, data: PaddedSplit) -> dict[str, Any]:
        k = int(load_arrays(self.data_dir / "train.npz")["k"])
        return {"k": k, "max_len": int(data.lengths.max())}

    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        return SequenceClassifier(self.recurrence(model), self.input_size, num_classes=10)

    def loss(self, model: nn.Module, batch: SequenceBatch) -> torch.Tensor:
        return F.cross_entropy(model(batch.x, batch.lengths), batch.y)

    def score_batch(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[float, dict[str, torch.Tensor]]:
        loss = F.cross_entropy(logits, batch.y, reduction="sum").item()
        return loss, {"accuracy": logits.argmax(1) == batch.y}

    def encode_line(self, line: str, meta: Mapping[str, Any]) -> torch.Tensor:
        digits = parse_digits(line)
        if len(digits) < meta["k"]:
            raise ValueError(f"has {len(digits)} digits, fewer than k={meta['k']}")
        return self.encode_inputs(torch.tensor(digits))

    def format_answer(self, output: torch.Tensor) -> str:
        return str(output.argmax().item())

    def input_example(self, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {"input": [" ".join(str(d % 10) for d in range(3, 3 + max(5, meta["k"])))]}
