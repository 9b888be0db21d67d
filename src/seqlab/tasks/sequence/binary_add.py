"""binary_add (aligned seq2seq): add two binary numbers one bit per step, least significant first.

Each step reads the two operands' bits (2 inputs) and emits one sum bit. Operands are zero-padded
on the left to the sum's length, so a carry out of the top bit still gets a step. A
generalization split uses operands far longer than any trained (>= 8x by default), which only a
model that learned the carry rule gets right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.core.sections import RunSection, Section
from seqlab.core.storage import Arrays
from seqlab.tasks.sequence.common import (
    PaddedSplit,
    SequenceBatch,
    SequenceTagger,
    SequenceTask,
    flatten_rows,
    unflatten,
)

if TYPE_CHECKING:
    from seqlab.tasks.sequence.config import BinaryAddDataConfig

Loss = Literal["bce", "mse"]


def random_int_with_bits(rng: np.random.Generator, bits: int) -> int:
    """A uniform integer with exactly `bits` bits (0 for bits == 0); arbitrary size."""
    if bits == 0:
        return 0
    value = int.from_bytes(rng.bytes((bits + 7) // 8), "little") & ((1 << bits) - 1)
    return value | (1 << (bits - 1))


def encode_pair(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) -> inputs (T, 2) and sum bits (T,), LSB first, T = bit length of the sum (at least 1)."""
    total = a + b
    t = max(1, total.bit_length())

    def bits(v: int) -> np.ndarray:
        return np.array([(v >> i) & 1 for i in range(t)], dtype=np.uint8)

    return np.stack([bits(a), bits(b)], axis=1), bits(total)


RUN_KINDS = ("generate", "kill", "propagate")  # both bits 1 / both 0 / bits differ


def long_run_pair(rng: np.random.Generator, bits: int) -> tuple[int, int]:
    """Two `bits`-bit operands with one run of random length where every position is of one kind.

    Generate (1+1) and kill (0+0) runs set the carry over and over, a propagate run (bits differ)
    must hold the carry it got for as long as it lasts. Uniform random operands almost never have
    runs longer than a handful of steps, and a model that never saw one loses track of the carry
    (or cannot reset it) on longer numbers. The top bit is left alone, so both stay `bits` long.
    """
    a, b = random_int_with_bits(rng, bits), random_int_with_bits(rng, bits)
    if bits < 2:
        return a, b
    start = int(rng.integers(0, bits - 1))
    end = int(rng.integers(start + 1, bits))
    run = ((1 << end) - 1) ^ ((1 << start) - 1)  # positions start .. end-1
    kind = RUN_KINDS[int(rng.integers(0, len(RUN_KINDS)))]
    if kind == "generate":
        a, b = a | run, b | run
    elif kind == "kill":
        a, b = a & ~run, b & ~run
    else:
        b = (b & ~run) | (~a & run)
    return a, b


def make_pairs(rng: np.random.Generator, n: int, min_bits: int, max_bits: int,
               long_run_ratio: float = 0.0) -> dict[str, np.ndarray]:
    """n additions whose operands have independent bit lengths uniform in [min_bits, max_bits];
    a `long_run_ratio` share of them hold one long run of same-kind positions (see long_run_pair)."""
    inputs, sums, op_bits = [], [], []
    for la, lb in rng.integers(min_bits, max_bits + 1, size=(n, 2)):
        if rng.random() < long_run_ratio:
            a, b = long_run_pair(rng, int(max(la, lb)))
        else:
            a, b = random_int_with_bits(rng, int(la)), random_int_with_bits(rng, int(lb))
        x, y = encode_pair(a, b)
        inputs.append(x)
        sums.append(y)
        op_bits.append(max(a.bit_length(), b.bit_length(), 1))
    flat_in, lengths = flatten_rows(inputs)
    flat_sum, _ = flatten_rows(sums)
    return {"inputs": flat_in, "sums": flat_sum, "lengths": lengths, "op_bits": np.array(op_bits, dtype=np.int32)}


def parse_operands(line: str) -> tuple[int, int]:
    """'1011 110' (most significant bit first) -> (11, 6)."""
    parts = line.split()
    if len(parts) != 2:
        raise ValueError(f"expected two binary numbers 'A B', got {len(parts)} field(s)")
    for p in parts:
        if set(p) - {"0", "1"}:
            raise ValueError(f"{p!r} is not a binary number")
    return int(parts[0], 2), int(parts[1], 2)


class BinaryAddTask(SequenceTask):
    name = "binary_add"
    input_size = 2  # one bit of each operand
    eval_batch_size = 512
    headline = "exact_match"
    headline_metric, headline_mode = "test.exact_match", "max"
    group_column = "bits"
    range_unit = "bits"
    plot_title = "binary_add: exact match by operand bit length"
    plot_ylabel = "exact match"

    def __init__(self, loss: Loss = "bce") -> None:
        self.loss_kind = loss

    @classmethod
    def for_training(cls, section: RunSection, variant: str | None) -> Self:
        return cls(loss=section.train.loss)  # type: ignore[attr-defined]  # BinaryAddTrainConfig

    @classmethod
    def from_checkpoint(cls, config: Mapping[str, Any]) -> Self:
        return cls(loss=config["train"]["loss"])

    @classmethod
    def length_range(cls, data: BinaryAddDataConfig) -> tuple[int, int, int]:
        return data.min_bits, data.max_bits, data.generalization_bits

    @classmethod
    def make_split(cls, rng: np.random.Generator, split: str, lo: int, hi: int, n: int,
                   data: BinaryAddDataConfig) -> dict[str, np.ndarray]:
        # Only training gets the extra runs: val/test/generalization stay uniform random, honest samples.
        return make_pairs(rng, n, lo, hi, data.long_run_ratio if split == "train" else 0.0)

    def padded(self, arrays: Arrays) -> PaddedSplit:
        lengths = arrays["lengths"].astype(np.int64)
        return PaddedSplit(x=torch.from_numpy(unflatten(arrays["inputs"], lengths).astype(np.float32)),
                           lengths=torch.from_numpy(lengths),
                           y=torch.from_numpy(unflatten(arrays["sums"], lengths).astype(np.float32)),
                           group=torch.from_numpy(arrays["op_bits"].astype(np.int64)))

    def data_meta(self, data: PaddedSplit) -> dict[str, Any]:
        return {"max_trained_bits": int(data.group.max())}

    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        return SequenceTagger(self.recurrence(model), self.input_size)

    def loss(self, model: nn.Module, batch: SequenceBatch) -> torch.Tensor:
        return masked_loss(model(batch.x, batch.lengths), batch.y, batch.lengths, self.loss_kind)

    def score_batch(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[float, dict[str, torch.Tensor]]:
        mask = torch.arange(batch.y.shape[1])[None, :] < batch.lengths[:, None]
        loss = masked_loss(logits, batch.y, batch.lengths, self.loss_kind).item() * batch.size
        ok = ((logits > 0).float() == batch.y) | ~mask
        return loss, {"bit_accuracy": ok[mask], "exact_match": ok.all(1)}

    def encode_line(self, line: str, meta: Mapping[str, Any]) -> torch.Tensor:
        x, _ = encode_pair(*parse_operands(line))
        return torch.from_numpy(x).float()

    def format_answer(self, output: torch.Tensor) -> str:
        bits = (output > 0).int().tolist()
        return format(sum(bit << i for i, bit in enumerate(bits)), "b")

    def input_example(self, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {"input": ["1011 110"]}


def masked_loss(logits: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, kind: Loss) -> torch.Tensor:
    """Mean loss over the valid (unpadded) sum bits."""
    mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths.to(y.device)[:, None]
    if kind == "mse":  # the seed's loss: squared error of the sigmoid output
        per_bit = (torch.sigmoid(logits) - y) ** 2
    else:
        per_bit = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return per_bit[mask].mean()
