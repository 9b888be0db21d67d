"""kth (seq2one): read a variable-length digit sequence and output the digit at position k (1-based).

Example: 9 7 0 5 6 with k=3 -> 0. Inputs are one-hot (10 classes per step). Besides the usual
train/val/test splits (lengths in [min_len, max_len]) a generalization split holds lengths from
max_len+1 to generalization_max_len, to show whether the model learned the rule or the lengths.
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
from seqlab.recurrent import SequenceClassifier
from seqlab.seeding import derive_seed
from seqlab.storage import load_arrays, save_arrays
from seqlab.tasks.base import Task
from seqlab.tasks.padded import PaddedSplit, iterate_batches, num_batches, unflatten

SPLITS = ("train", "val", "test", "generalization")


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


class KthTask(Task):
    name = "kth"

    def generate(self, params: dict[str, Any]) -> dict[str, Any]:
        d, seed = params["kth"]["data"], params["seed"]
        ranges = {"train": (d["min_len"], d["max_len"], d["n_train"]), "val": (d["min_len"], d["max_len"], d["n_val"]),
                  "test": (d["min_len"], d["max_len"], d["n_test"]),
                  "generalization": (d["max_len"] + 1, d["generalization_max_len"], d["n_generalization"])}
        stats = {}
        for split, (lo, hi, n) in ranges.items():
            rng = np.random.default_rng(derive_seed(seed, "kth", split))
            arrays = make_sequences(rng, n, lo, hi, d["k"])
            save_arrays(self.data_dir / f"{split}.npz", k=np.array(d["k"]), **arrays)
            stats[split] = {"n": n, "lengths": [lo, hi]}
        return stats

    def load_split(self, split: str) -> PaddedSplit:
        a = load_arrays(self.data_dir / f"{split}.npz")
        lengths = a["lengths"].astype(np.int64)
        return PaddedSplit(x=torch.from_numpy(unflatten(a["digits"], lengths).astype(np.int64)),
                           lengths=torch.from_numpy(lengths), y=torch.from_numpy(a["targets"]),
                           group=torch.from_numpy(lengths))

    def batches(self, data: PaddedSplit, batch_size: int, generator: torch.Generator | None):
        for b in iterate_batches(data, batch_size, generator):
            b["x"] = F.one_hot(b["x"], 10).float()
            yield b

    def num_batches(self, data: PaddedSplit, batch_size: int) -> int:
        return num_batches(data, batch_size)

    def data_meta(self, data: PaddedSplit) -> dict[str, Any]:
        k = int(load_arrays(self.data_dir / "train.npz")["k"])
        return {"k": k, "max_len": int(data.lengths.max())}

    def build_model(self, model_params: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        return SequenceClassifier(model_params["cell"], 10, model_params["hidden_size"], model_params["num_layers"], 10)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(model(batch["x"], batch["lengths"]), batch["y"])

    def _scores(self, model: nn.Module, data: PaddedSplit, device: torch.device) -> tuple[float, torch.Tensor]:
        losses, correct = [], []
        for b in self.batches(data, 1024, None):
            logits = model(b["x"].to(device), b["lengths"]).cpu()
            losses.append(F.cross_entropy(logits, b["y"], reduction="sum").item())
            correct.append(logits.argmax(1) == b["y"])
        return sum(losses) / len(data), torch.cat(correct)

    def validate(self, model: nn.Module, data: PaddedSplit, device: torch.device) -> dict[str, float]:
        loss, correct = self._scores(model, data, device)
        return {"val_loss": loss, "val_accuracy": correct.float().mean().item()}

    def evaluate(self, model: nn.Module, device: torch.device):
        metrics: dict[str, Any] = {}
        rows = []
        for split in ("test", "generalization"):
            data = self.load_split(split)
            _, correct = self._scores(model, data, device)
            metrics[split] = {"accuracy": correct.float().mean().item(), "n": len(data),
                              "min_len": int(data.lengths.min()), "max_len": int(data.lengths.max())}
            for length in sorted(set(data.group.tolist())):
                sel = correct[data.group == length]
                rows.append({"length": length, "accuracy": sel.float().mean().item(), "count": int(sel.numel()),
                             "split": split})
        metrics["accuracy_by_length"] = {str(r["length"]): round(r["accuracy"], 6) for r in rows}
        line_plot(paths.metrics_dir(self.model_id) / "by_length.png", rows, "length", ["accuracy"],
                  "kth: accuracy by sequence length", "accuracy", vline=metrics["test"]["max_len"] + 0.5)
        return metrics, {"by_length": rows}

    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: Iterable[str], out: TextIO, err: TextIO) -> int:
        k, failures = meta["k"], 0
        for lineno, line in enumerate(inputs, 1):
            try:
                digits = parse_digits(line)
                if len(digits) < k:
                    raise ValueError(f"has {len(digits)} digits, fewer than k={k}")
            except ValueError as exc:
                print(f"line {lineno}: {line.strip()!r}: {exc}", file=err)
                failures += 1
                continue
            x = F.one_hot(torch.tensor([digits]), 10).float()
            with torch.no_grad():
                pred = model(x, torch.tensor([len(digits)])).argmax(1).item()
            print(pred, file=out, flush=True)
        return failures
