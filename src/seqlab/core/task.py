"""The contract between a task and the shared machinery (training loop, evaluation, predict).

A task supplies data, a model, a loss, validation metrics, test metrics with their tables and figures,
and decoding; everything else (optimisation, checkpoints, early stopping, tracking, the metrics, CSV
and PNG files) is written once in seqlab.training.loop and seqlab.evaluation.evaluate.

A task instance holds what its runs need, given when it is made and never changed afterwards:
`for_training(section, variant)` makes it for a training run of a params section, `from_checkpoint`
for evaluate and predict (a checkpoint carries its config). Generating data is not part of the
contract: the registry names each task's data generator (a Task class method for the sequence tasks,
the renderer for OCR, whose generate stage must not import the recognizer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, Self, TextIO

import torch
from torch import nn

from seqlab.core import paths
from seqlab.core.sections import RunSection, Section


class Batch(Protocol):
    """A training or evaluation batch (each task has its own typed dataclass)."""

    @property
    def size(self) -> int: ...  # samples in the batch

    def to(self, device: torch.device) -> Self: ...


Table = list[dict[str, Any]]  # rows of a CSV file
Figure = Callable[[Path], None]  # draws one image file at the path it is given


class Answer(NamedTuple):
    """A task's reply to one predict input: the answer text, or why the input could not be answered."""

    input: str
    text: str | None  # None when the input was refused
    error: str | None  # one line: what is wrong with the input


class Evaluation(NamedTuple):
    """What a task's test scoring returns; seqlab.core.results writes it to metrics/<model id>/ (eval.json holds
    the headline figure of the task's headline splits, splits.json every figure of every split)."""

    metrics: dict[str, dict[str, Any]]  # test split -> its figures (scalars: breakdowns are tables)
    tables: dict[str, Table]  # <name>.csv: breakdowns by length, kind...
    figures: dict[str, Figure]  # file name -> drawing, usually a plot of one of the tables


class Reference(NamedTuple):
    """A model of a task's MLflow experiment that this project does not train (OCR: the Tesseract baseline): its
    figures are files in metrics/<model_id>/ (seqlab.core.results' layout), written by its own stage."""

    model_id: str
    params: dict[str, Any]  # what the run logs as params, as recorded in its files
    files: list[Path]  # eval.json first, then its tables and figures


class Reading(NamedTuple):
    """How a trained model reads beyond its checkpoint, as params.yaml sets it (OCR: the CTC decoding and the
    language model file it reads): what an MLflow model carries so that it answers what predict answers."""

    settings: dict[str, Any]  # YAML-able (the MLflow model's model_config)
    files: dict[str, Path]  # name -> file read (the MLflow model's artifacts)


NO_READING = Reading({}, {})


class Task(ABC):
    name: ClassVar[str]  # params.yaml section and data/<name>
    monitor: ClassVar[str] = "val_loss"  # validation metric that drives early stopping and model selection
    monitor_mode: ClassVar[str] = "min"  # "min" or "max"
    # A fixed intra-op thread count for training (None: the thread policy's, tuned while it trains): for a model
    # whose kernels give other bits at another count (seqlab.training.thread_tuner.training_threads).
    training_threads: ClassVar[int | None] = None
    # The test metric a version is judged by (eval.json's key, dotted: "test.cer") and its better direction.
    headline_metric: ClassVar[str]
    headline_mode: ClassVar[str]  # "min" or "max"
    # The splits whose headline figure eval.json holds (`dvc metrics show`, the MLflow run's metrics): the ones a
    # person compares runs by. Every figure of every split is in splits.json.
    headline_splits: ClassVar[tuple[str, ...]] = ("test",)
    # `seqlab predict`: inputs are command-line arguments (e.g. image paths), else lines on stdin.
    predict_from_args: ClassVar[bool] = False
    # Keyword arguments `predict` takes beyond the common ones (the OCR task's page mode and output format).
    predict_options: ClassVar[frozenset[str]] = frozenset()
    # The MLflow model's input columns, name -> (MLflow type "string" or "binary", required). A row's input is
    # its first column that holds a value: binary values (encoded files) reach `answers` as temporary file paths.
    input_columns: ClassVar[dict[str, tuple[str, bool]]] = {"input": ("string", True)}
    # True when params.yaml shapes the answers (Task.reading): the train stage has neither those params nor the files
    # they name as deps, so the evaluate stage logs the MLflow model, with its reading, instead of training.
    reads_with_params: ClassVar[bool] = False
    variant: str | None = None  # e.g. "crnn" for the OCR task

    @property
    def model_id(self) -> str:
        return paths.model_id(self.name, self.variant)

    @property
    def data_dir(self) -> Path:
        return paths.data_dir(self.name)

    @property
    def model_file(self) -> Path:
        """Where training writes the model: models/<model id>.pt (a fine-tuning run writes where it is told)."""
        return paths.model_path(self.model_id)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def for_training(cls, section: RunSection, variant: str | None) -> Self:
        """The task as a training run of `section` (its params model/train pair) needs it."""

    @classmethod
    @abstractmethod
    def from_checkpoint(cls, config: Mapping[str, Any]) -> Self:
        """The task a checkpoint's model was trained as (`config`: the checkpoint's config dict)."""

    # --- data -----------------------------------------------------------------------------
    @abstractmethod
    def load_split(self, split: str) -> Any:
        """Load one split written by generate (raise DataError when missing or corrupt)."""

    @abstractmethod
    def batches(self, data: Any, batch_size: int, generator: torch.Generator | None) -> Iterator[Any]:
        """Yield batches (each a Batch); shuffled with `generator` when given, in order when None."""

    @abstractmethod
    def num_batches(self, data: Any, batch_size: int) -> int: ...

    def rank_batches(self, data: Any, batch_size: int, generator: torch.Generator, rank: int,
                     world: int) -> Iterator[Any]:
        """One rank's share of a training epoch (seqlab.training.distributed): batches rank, rank + world, rank + 2 world...
        of `batches(data, batch_size, generator)`, whose order every rank draws alike. This default builds every
        batch and keeps its share; a task whose batches cost much to build overrides it to build only its own."""
        return islice(self.batches(data, batch_size, generator), rank, None, world)

    def data_meta(self, data: Any) -> dict[str, Any]:
        """Facts about the training data the model needs at predict time (charset, height...)."""
        return {}

    # --- model ----------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        """The model its params model section describes (the training run's `section.model`, or
        `model_section` of a checkpoint's copy)."""

    @abstractmethod
    def model_section(self, args: Mapping[str, Any]) -> Section:
        """A checkpoint's model dict (the on-disk form of the model section) as the typed section build_model
        takes; a dict that is not one raises ValueError with one line naming the key."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def validation_metrics(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
        """Metrics on the validation split, keys prefixed val_, including self.monitor."""

    # --- evaluation and predict -----------------------------------------------------------
    @abstractmethod
    def evaluate(self, model: nn.Module, device: torch.device) -> Evaluation:
        """Each test split's figures, named tables (breakdowns) and figures."""

    def use_params(self, params: Any) -> None:
        """Read as params.yaml says (OCR: its decoding), applied by evaluate and predict after from_checkpoint.
        `params` is a seqlab.core.config.Params."""
        self.use_reading(self.reading(params))

    def reading(self, params: Any) -> Reading:
        """The settings of `params` that shape how a trained model reads, and the files they read. Default: none."""
        return NO_READING

    def use_reading(self, reading: Reading) -> None:
        """Read as `reading` says (from Task.reading, or an MLflow model's config and artifacts). Default: nothing
        to set."""
        return None

    def references(self) -> list[Reference]:
        """Models of this task's experiment trained elsewhere, whose files the evaluate stage logs into MLflow
        beside this task's models when the store lacks them (a stage whose outputs are git-tracked and up to
        date never runs on a fresh clone, so it cannot log them itself)."""
        return []

    @abstractmethod
    def answers(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str]) -> Iterator[Answer]:
        """One Answer per input, in order: the one computation behind `seqlab predict` and the MLflow pyfunc."""

    @abstractmethod
    def input_example(self, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
        """A real input for the MLflow model (columns of `input_columns` -> values), logged with it."""

    @abstractmethod
    def predict(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str],
                out: TextIO, err: TextIO) -> int:
        """Print `answers` on `out`; report bad inputs on `err` one line each; return failures."""
