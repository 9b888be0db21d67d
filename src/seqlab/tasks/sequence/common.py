"""What kth and binary_add share: padded in-memory splits, recurrent models, and one task shape
(generate split by split, batch, score per sample, report by sequence length, predict line by line).

A task module adds only what differs: how a split's sequences are drawn, the model head, the loss,
the per-sample outcomes it is scored on, and how input lines are parsed and answers printed.

Whole splits live as right-padded tensors and a batch is one index gather trimmed to its longest
sequence: no per-sample Python work in the training loop. The recurrences run forward only, so the
padding after a sequence cannot change its states up to its last real step: the models run on the
padded batch directly (about 2x faster on CPU than packing it) and read the outputs at the valid
steps, and a sequence gives the same answer alone or in any batch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, ClassVar, Protocol, Self, TextIO

import numpy as np
import torch
from torch import nn

from seqlab.core import paths
from seqlab.core.config import section_from_dict
from seqlab.core.plots import line_plot
from seqlab.core.sections import RecurrentModelConfig, RunSection, Section
from seqlab.core.seeding import derive_seed
from seqlab.core.storage import Arrays, load_arrays, save_arrays
from seqlab.core.task import Answer, Evaluation, Task

SPLITS = ("train", "val", "test", "generalization")
TEST_SPLITS = ("test", "generalization")  # generalization: longer than any trained sequence

# --- models ----------------------------------------------------------------------------------------

CELL_TYPES: dict[str, Callable[..., nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
    """A forward-only recurrence (the models below rely on padding coming after every real step)."""
    if cell not in CELL_TYPES:
        raise ValueError(f"unknown recurrent cell {cell!r} (choose from {', '.join(CELL_TYPES)})")
    return CELL_TYPES[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)


class SequenceClassifier(nn.Module):
    """seq2one: a linear head on the hidden state at each sequence's last valid step."""

    def __init__(self, cfg: RecurrentModelConfig, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.rnn = make_rnn(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers)
        self.head = nn.Linear(cfg.hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]  # (B, T, H): top layer's state after every step
        last = lengths.to(out.device) - 1
        return self.head(out[torch.arange(out.shape[0], device=out.device), last])


class SequenceTagger(nn.Module):
    """Aligned seq2seq: one output per input step (outputs at padding positions are meaningless: mask them)."""

    def __init__(self, cfg: RecurrentModelConfig, input_size: int, outputs: int = 1) -> None:
        super().__init__()
        self.rnn = make_rnn(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers)
        self.head = nn.Linear(cfg.hidden_size, outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        return self.head(out).squeeze(-1)


# --- data ------------------------------------------------------------------------------------------


@dataclass
class PaddedSplit:
    x: torch.Tensor  # (N, T, ...) right-padded inputs
    lengths: torch.Tensor  # (N,) true lengths
    y: torch.Tensor  # (N,) or (N, T) targets
    group: torch.Tensor  # (N,) the length used for per-length reports

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class SequenceBatch:
    x: torch.Tensor  # (B, T, features) inputs, T = the batch's longest sequence
    lengths: torch.Tensor  # (B,)
    y: torch.Tensor  # (B,) or (B, T)
    group: torch.Tensor  # (B,)

    @property
    def size(self) -> int:
        return len(self.lengths)

    def to(self, device: torch.device) -> SequenceBatch:
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})


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


def iterate_batches(split: PaddedSplit, batch_size: int, generator: torch.Generator | None,
                    encode: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> Iterator[SequenceBatch]:
    """Batches of `split` (shuffled by `generator`, in order when None); `encode` turns stored inputs
    into model inputs (e.g. digits into one-hot vectors) one batch at a time."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        lengths = split.lengths[idx]
        t = int(lengths.max())
        y = split.y[idx]
        yield SequenceBatch(x=encode(split.x[idx, :t]), lengths=lengths, y=y[:, :t] if y.dim() > 1 else y,
                            group=split.group[idx])


# --- the task shape --------------------------------------------------------------------------------


class SequenceDataConfig(Protocol):
    """The split sizes every sequence task's data section has."""

    @property
    def n_train(self) -> int: ...
    @property
    def n_val(self) -> int: ...
    @property
    def n_test(self) -> int: ...
    @property
    def n_generalization(self) -> int: ...


class SequenceTask(Task):
    """A sequence task: train/val/test share one length range, generalization is longer."""

    headline_splits = TEST_SPLITS  # eval.json: the headline on both, in and beyond the trained lengths
    # oneDNN's fp32 RNN gives other bits at another thread count, so these models train on a fixed count, and one
    # thread is the count that holds beside a busy process (docs/threads.md: 0.75-0.9x of two threads idle,
    # about its own idle speed under load, where two spinning threads fall to 0.25-0.3x).
    training_threads = 1
    input_size: ClassVar[int]  # features per step
    eval_batch_size: ClassVar[int]
    headline: ClassVar[str]  # the per-sample outcome (see score_batch) reported per length and plotted
    group_column: ClassVar[str]  # x column of the per-length table ("length", "bits")
    range_unit: ClassVar[str]  # each split's figures include min_<unit> and max_<unit>
    plot_title: ClassVar[str]
    plot_ylabel: ClassVar[str]

    @classmethod
    def for_training(cls, section: RunSection, variant: str | None) -> Self:
        return cls()

    @classmethod
    def from_checkpoint(cls, config: Mapping[str, Any]) -> Self:
        return cls()

    def model_section(self, args: Mapping[str, Any]) -> RecurrentModelConfig:
        return section_from_dict(RecurrentModelConfig, args)

    @staticmethod
    def recurrence(model: Section) -> RecurrentModelConfig:
        """`model` as the section the sequence models are built from (build_model's argument)."""
        if not isinstance(model, RecurrentModelConfig):
            raise TypeError(f"a sequence model is built from RecurrentModelConfig, not {type(model).__name__}")
        return model

    # --- data -----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def length_range(cls, data: Any) -> tuple[int, int, int]:
        """(shortest, longest trained, longest generalization) in the task's length unit."""

    @classmethod
    @abstractmethod
    def make_split(cls, rng: np.random.Generator, split: str, lo: int, hi: int, n: int,
                   data: Any) -> dict[str, np.ndarray]:
        """The arrays of one split: n samples with lengths in [lo, hi], drawn from `rng`."""

    @abstractmethod
    def padded(self, arrays: Arrays) -> PaddedSplit:
        """A split as written by make_split, as padded tensors."""

    def encode_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Stored inputs of a batch -> model inputs (B, T, input_size)."""
        return x

    @classmethod
    def generate(cls, data: SequenceDataConfig, seed: int) -> dict[str, Any]:
        lo, hi, far = cls.length_range(data)
        sizes = {"train": data.n_train, "val": data.n_val, "test": data.n_test, "generalization": data.n_generalization}
        stats = {}
        for split in SPLITS:
            split_lo, split_hi = (hi + 1, far) if split == "generalization" else (lo, hi)
            rng = np.random.default_rng(derive_seed(seed, cls.name, split))
            arrays = cls.make_split(rng, split, split_lo, split_hi, sizes[split], data)
            save_arrays(paths.data_dir(cls.name) / f"{split}.npz", **arrays)
            stats[split] = {"n": sizes[split], cls.group_column: [split_lo, split_hi]}
        return stats

    def load_split(self, split: str) -> PaddedSplit:
        return self.padded(load_arrays(self.data_dir / f"{split}.npz"))

    def batches(self, data: PaddedSplit, batch_size: int, generator: torch.Generator | None) -> Iterator[SequenceBatch]:
        return iterate_batches(data, batch_size, generator, self.encode_inputs)

    def num_batches(self, data: PaddedSplit, batch_size: int) -> int:
        return (len(data) + batch_size - 1) // batch_size

    # --- scoring --------------------------------------------------------------------------
    @abstractmethod
    def score_batch(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[float, dict[str, torch.Tensor]]:
        """The batch's summed loss and its outcomes by metric name (bool tensors; a metric is their mean
        over the split, e.g. {"accuracy": per-sample correct}). `headline` must be per sample."""

    def score(self, model: nn.Module, data: PaddedSplit, device: torch.device) -> tuple[float, dict[str, torch.Tensor]]:
        """Mean loss per sample and the outcomes of every batch, joined."""
        loss_sum = 0.0
        outcomes: dict[str, list[torch.Tensor]] = {}
        for batch in self.batches(data, self.eval_batch_size, None):
            logits = model(batch.x.to(device), batch.lengths).cpu()
            batch_loss, batch_outcomes = self.score_batch(logits, batch)
            loss_sum += batch_loss
            for name, value in batch_outcomes.items():
                outcomes.setdefault(name, []).append(value)
        return loss_sum / len(data), {name: torch.cat(values) for name, values in outcomes.items()}

    def validation_metrics(self, model: nn.Module, data: PaddedSplit, device: torch.device) -> dict[str, float]:
        loss, outcomes = self.score(model, data, device)
        return {"val_loss": loss, **{f"val_{name}": _rate(o) for name, o in outcomes.items()}}

    def evaluate(self, model: nn.Module, device: torch.device) -> Evaluation:
        """Each test split's rates, and the headline rate per length (table and plot)."""
        metrics: dict[str, dict[str, Any]] = {}
        rows = []
        for split in TEST_SPLITS:
            data = self.load_split(split)
            _, outcomes = self.score(model, data, device)
            metrics[split] = {**{name: _rate(o) for name, o in outcomes.items()}, "n": len(data),
                              f"min_{self.range_unit}": int(data.group.min()),
                              f"max_{self.range_unit}": int(data.group.max())}
            hits = outcomes[self.headline]
            for length in sorted(set(data.group.tolist())):
                sel = hits[data.group == length]
                rows.append({self.group_column: length, self.headline: _rate(sel), "count": int(sel.numel()),
                             "split": split})
        plot = partial(line_plot, rows=rows, x=self.group_column, ys=[self.headline], title=self.plot_title,
                       ylabel=self.plot_ylabel, vline=metrics["test"][f"max_{self.range_unit}"] + 0.5)
        return Evaluation(metrics, {"by_length": rows}, {"by_length.png": plot})

    # --- predict --------------------------------------------------------------------------
    @abstractmethod
    def encode_line(self, line: str, meta: Mapping[str, Any]) -> torch.Tensor:
        """One input line -> model inputs (T, input_size); ValueError says what is wrong with the line."""

    @abstractmethod
    def format_answer(self, output: torch.Tensor) -> str:
        """The model's output for one sequence -> the answer line."""

    def answers(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str]) -> Iterator[Answer]:
        """Line by line, lazily: an interactive `seqlab predict` answers each line as it is typed."""
        for line in inputs:
            try:
                x = self.encode_line(line, meta)
            except ValueError as exc:
                yield Answer(line, None, str(exc))
                continue
            with torch.no_grad():
                output = model(x[None], torch.tensor([len(x)]))[0]
            yield Answer(line, self.format_answer(output), None)

    def predict(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str], out: TextIO,
                err: TextIO) -> int:
        failures = 0
        for lineno, answer in enumerate(self.answers(model, meta, inputs), 1):
            if answer.error is not None:
                print(f"line {lineno}: {answer.input.strip()!r}: {answer.error}", file=err)
                failures += 1
            # One output line per input line, an empty one for a refused input, so answers line up with inputs.
            print(answer.text if answer.error is None else "", file=out, flush=True)
        return failures


def _rate(outcomes: torch.Tensor) -> float:
    return outcomes.float().mean().item()
