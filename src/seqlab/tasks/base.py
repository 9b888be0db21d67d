"""The contract between a task and the shared machinery (training loop, evaluation, predict).

A task supplies data, a model, a loss and decoding; everything else (optimisation, checkpoints,
early stopping, tracking, metrics files, plots) is written once in seqlab.training and
seqlab.evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from seqlab import paths

Batch = dict[str, torch.Tensor]


class Task(ABC):
    name: str  # params.yaml section and data/<name>
    variant: str | None = None  # e.g. "crnn" for the OCR task
    monitor: str = "val_loss"  # validation metric that drives early stopping and model selection
    monitor_mode: str = "min"  # "min" or "max"

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name

    @property
    def data_dir(self) -> Path:
        return paths.data_dir(self.name)

    # --- data -----------------------------------------------------------------------------
    @abstractmethod
    def generate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Write every split under data_dir; return summary stats for the log."""

    @abstractmethod
    def load_split(self, split: str) -> Any:
        """Load one split written by generate (raise DataError when missing or corrupt)."""

    @abstractmethod
    def batches(self, data: Any, batch_size: int, generator: torch.Generator | None) -> Iterator[Batch]:
        """Yield batches; shuffled with `generator` when given, in order when None."""

    @abstractmethod
    def num_batches(self, data: Any, batch_size: int) -> int: ...

    # --- model ----------------------------------------------------------------------------
    def train_section(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params subtree a training run reads: {'model': ..., 'train': ...}."""
        return params[self.name]

    def configure(self, section: dict[str, Any]) -> None:
        """Take the run's {'model', 'train'} params before training or evaluation (e.g. the loss kind)."""
        return None  # most tasks need nothing beyond build_model's arguments

    def data_meta(self, data: Any) -> dict[str, Any]:
        """Facts about the data the model needs at predict time (charset, height...)."""
        return {}

    @abstractmethod
    def build_model(self, model_params: dict[str, Any], meta: dict[str, Any]) -> nn.Module: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    @abstractmethod
    def validate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
        """Validation metrics, keys prefixed val_, including self.monitor."""

    # --- evaluation and predict -----------------------------------------------------------
    @abstractmethod
    def evaluate(self, model: nn.Module, device: torch.device) -> tuple[dict[str, Any], dict[str, list[dict]]]:
        """Test metrics (nested dict for eval.json) and named tables (CSV rows) to plot."""

    @abstractmethod
    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: Iterable[str],
                out: TextIO, err: TextIO) -> int:
        """Answer each input on `out`; report bad ones on `err` one line each; return failures."""


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
