"""Building blocks of the typed params.yaml sections: the strict base model, the sections several tasks
share (training, recurrent model) and the helpers for cross-key rules.

Layering, so that nothing imports in a circle: this module knows no task. Each task's section is built from
it in the task's own folder (seqlab.tasks.sequence.config, seqlab.tasks.ocr.config), and seqlab.core.config
assembles the root `Params` from the sections the registry names. Nothing here imports torch or trdg, so
`seqlab validate` starts fast.

Every section is strict (no "3" -> 3 coercion, a bool is not a number; an int is accepted where a float
is expected), forbids unknown keys, has no defaults (params.yaml is the complete contract) and is frozen.
A model section is what its model is built from: the models take it whole (`CRNN(section, ...)`,
`SequenceClassifier(section, ...)`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn, Protocol, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Ratio = Annotated[float, Field(ge=0, le=1)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A params.yaml section: strict types, every key required, unknown keys rejected, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def fail(message: str) -> NoReturn:
    """Reject a value with a one-line message.

    In a section's model validator, write the keys it names in backticks, relative to that section
    ("`k` must be <= `min_len`"); the error report turns them into the keys of params.yaml
    ("kth.data.k must be <= kth.data.min_len"). A message that names no key (from a field validator)
    is reported after the field's key ("ocr.data.fonts has duplicate entries").
    """
    raise PydanticCustomError("rule", message)


def rule(ok: bool, message: str) -> None:
    """A cross-key rule: `fail(message)` unless `ok`."""
    if not ok:
        fail(message)


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        fail("has duplicate entries")
    return values


Names = Annotated[list[NonEmptyStr], AfterValidator(_unique)]  # e.g. font file names, each at most once


def python_kind(value: Any) -> str | None:
    """Discriminator for a union of an int, a str or a list: pick the member by the value's Python type,
    so that a bad value gets one message ("must be an integer or a list of ...") instead of one per member.
    A bool is no int here."""
    return {int: "int", str: "str", list: "list"}.get(type(value))


class TrainConfig(Section):
    """How one model is trained (seqlab.training.loop): AdamW, per-step schedule, early stopping."""

    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: NonNegativeFloat
    grad_clip: NonNegativeFloat  # 0 disables clipping
    scheduler: Literal["constant", "cosine", "onecycle"]
    patience: PositiveInt  # epochs without validation improvement before stopping
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16", "fp16"]  # bf16/fp16: mixed precision (seqlab.training.devices)
    nproc: PositiveInt  # processes training together (seqlab.training.distributed); batch_size is split among them


class RecurrentModelConfig(Section):
    """The recurrence of the sequence tasks' models (seqlab.tasks.sequence.SequenceClassifier/-Tagger)."""

    cell: Literal["lstm", "gru", "rnn"]
    hidden_size: PositiveInt
    num_layers: PositiveInt


class RunSection(Protocol):
    """What one training run reads: a model section (the model constructor's arguments) and a train section.

    params.kth, params.binary_add and each OCR variant (params.ocr.crnn...) have this shape.
    """

    @property
    def model(self) -> Section: ...

    @property
    def train(self) -> TrainConfig: ...

    def model_dump(self) -> dict[str, Any]: ...


class TaskSection(Section):
    """A task's params.yaml section, the class its registry entry names. A task without variants has its
    `model` and `train` here, and is its own training run; a task with variants overrides `run`."""

    data: Section  # what its generate stage reads (each task narrows it to its own data section)

    def run(self, variant: str | None = None) -> RunSection:
        """What a training run of `variant` reads (the `--variant` given, or the task's default)."""
        if variant is not None:
            raise ValueError(f"{type(self).__name__} has no variants (got {variant!r})")
        return cast(RunSection, self)
