"""binary_add (aligned seq2seq): add two binary numbers one bit per step, least significant first.

Each step reads the two operands' bits (2 inputs) and emits one sum bit. Operands are zero-padded
on the left to the sum's length, so a carry out of the top bit still gets a step. A
generalization split uses operands far longer than any trained (>= 8x by default), which only a
model that learned the carry rule gets right.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlab import paths
from seqlab.plots import line_plot
from seqlab.recurrent import SequenceTagger
from seqlab.seeding import derive_seed
from seqlab.storage import load_arrays, save_arrays
from seqlab.tasks.base import Task
from seqlab.tasks.padded import PaddedSplit, flatten_rows, iterate_batches, num_batches, unflatten


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


class BinaryAddTask(Task):
    name = "binary_add"

    def generate(self, params: dict[str, Any]) -> dict[str, Any]:
        d, seed = params["binary_add"]["data"], params["seed"]
        ranges = {"train": (d["min_bits"], d["max_bits"], d["n_train"]),
                  "val": (d["min_bits"], d["max_bits"], d["n_val"]),
                  "test": (d["min_bits"], d["max_bits"], d["n_test"]),
                  "generalization": (d["max_bits"] + 1, d["generalization_bits"], d["n_generalization"])}
        stats = {}
        for split, (lo, hi, n) in ranges.items():
            rng = np.random.default_rng(derive_seed(seed, "binary_add", split))
            # Only training gets the extra runs: val/test/generalization stay uniform random, honest samples.
            chains = d["long_run_ratio"] if split == "train" else 0.0
            save_arrays(self.data_dir / f"{split}.npz", **make_pairs(rng, n, lo, hi, chains))
            stats[split] = {"n": n, "bits": [lo, hi]}
        return stats

    def load_split(self, split: str) -> PaddedSplit:
        a = load_arrays(self.data_dir / f"{split}.npz")
        lengths = a["lengths"].astype(np.int64)
        return PaddedSplit(x=torch.from_numpy(unflatten(a["inputs"], lengths).astype(np.float32)),
                           lengths=torch.from_numpy(lengths),
                           y=torch.from_numpy(unflatten(a["sums"], lengths).astype(np.float32)),
                           group=torch.from_numpy(a["op_bits"].astype(np.int64)))

    def batches(self, data: PaddedSplit, batch_size: int, generator: torch.Generator | None):
        return iterate_batches(data, batch_size, generator)

    def num_batches(self, data: PaddedSplit, batch_size: int) -> int:
        return num_batches(data, batch_size)

    def data_meta(self, data: PaddedSplit) -> dict[str, Any]:
        return {"max_trained_bits": int(data.group.max())}

    def build_model(self, model_params: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        return SequenceTagger(model_params["cell"], 2, model_params["hidden_size"], model_params["num_layers"])

    loss_kind = "bce"

    def configure(self, section: dict[str, Any]) -> None:
        self.loss_kind = section["train"]["loss"]

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        logits = model(batch["x"], batch["lengths"])
        return self.masked_loss(logits, batch["y"], batch["lengths"], self.loss_kind)

    @staticmethod
    def masked_loss(logits: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, kind: str) -> torch.Tensor:
        mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths.to(y.device)[:, None]
        if kind == "mse":  # the seed's loss: squared error of the sigmoid output
            per_bit = (torch.sigmoid(logits) - y) ** 2
        else:
            per_bit = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return per_bit[mask].mean()

    def _scores(self, model: nn.Module, data: PaddedSplit, device: torch.device):
        loss_sum, bit_ok, exact = 0.0, [], []
        for b in self.batches(data, 512, None):
            logits = model(b["x"].to(device), b["lengths"]).cpu()
            mask = torch.arange(b["y"].shape[1])[None, :] < b["lengths"][:, None]
            loss_sum += self.masked_loss(logits, b["y"], b["lengths"], self.loss_kind).item() * b["size"]
            ok = ((logits > 0).float() == b["y"]) | ~mask
            bit_ok.append(ok[mask])
            exact.append(ok.all(1))
        return loss_sum / len(data), torch.cat(bit_ok), torch.cat(exact)

    def validate(self, model: nn.Module, data: PaddedSplit, device: torch.device) -> dict[str, float]:
        loss, bits, exact = self._scores(model, data, device)
        return {"val_loss": loss, "val_bit_accuracy": bits.float().mean().item(),
                "val_exact_match": exact.float().mean().item()}

    def evaluate(self, model: nn.Module, device: torch.device):
        metrics: dict[str, Any] = {}
        rows = []
        for split in ("test", "generalization"):
            data = self.load_split(split)
            _, bits, exact = self._scores(model, data, device)
            metrics[split] = {"exact_match": exact.float().mean().item(), "bit_accuracy": bits.float().mean().item(),
                              "n": len(data), "min_bits": int(data.group.min()), "max_bits": int(data.group.max())}
            for nbits in sorted(set(data.group.tolist())):
                sel = exact[data.group == nbits]
                rows.append({"bits": nbits, "exact_match": sel.float().mean().item(), "count": int(sel.numel()),
                             "split": split})
        metrics["exact_match_by_bits"] = {str(r["bits"]): round(r["exact_match"], 6) for r in rows}
        line_plot(paths.metrics_dir(self.model_id) / "by_length.png", rows, "bits", ["exact_match"],
                  "binary_add: exact match by operand bit length", "exact match",
                  vline=metrics["test"]["max_bits"] + 0.5)
        return metrics, {"by_length": rows}

    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: Iterable[str], out: TextIO, err: TextIO) -> int:
        failures = 0
        for lineno, line in enumerate(inputs, 1):
            try:
                a, b = parse_operands(line)
            except ValueError as exc:
                print(f"line {lineno}: {line.strip()!r}: {exc}", file=err)
                failures += 1
                continue
            x, _ = encode_pair(a, b)
            with torch.no_grad():
                logits = model(torch.from_numpy(x).float()[None], torch.tensor([len(x)]))[0]
            bits = (logits > 0).int().tolist()
            value = sum(bit << i for i, bit in enumerate(bits))
            print(format(value, "b"), file=out, flush=True)
        return failures
