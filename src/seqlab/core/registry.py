"""Task registry: the one place that names the tasks. Each entry gives a task's name, where its Task class, its
params section class and its data generator live (module paths, imported lazily: each stage loads only
its own task, `seqlab validate` no torch, and ocr's generate stage not the recognizer), and its variants. Everything else about a task (headline metric, MLflow
signature, how predict reads its inputs) is declared by its Task class.

Adding a task: its module(s) under seqlab/tasks/, one `register(TaskEntry(...))` line below, its params.yaml
section and its dvc.yaml stages (docs/development.md "Adding a task").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seqlab.core.errors import SeqlabError
from seqlab.core.paths import model_id

if TYPE_CHECKING:
    from seqlab.core.sections import TaskSection
    from seqlab.core.task import Task

__all__ = ["TaskEntry", "check_variant", "config_class", "data_generator", "entries", "model_id", "reader_class",
           "register", "task_class", "task_names", "variant_names"]


@dataclass(frozen=True)
class TaskEntry:
    name: str  # params.yaml section, data/<name>, the `seqlab <command> <name>` argument
    task: str  # "module:Class" of the Task subclass (may import torch)
    config: str  # "module:Class" of its params section (a seqlab.core.sections.Section; torch-free)
    # "module:function" (data section, seed) -> stats, which writes data/<name> (`seqlab generate`): a Task
    # classmethod ("module:Class.generate") or, for OCR, its renderer, so that stage imports no recognizer.
    generator: str
    variants: tuple[str, ...] = ()  # models of the task, each with its own section <name>.<variant>
    default_variant: str | None = None
    # "module:Class" of the Task subclass `seqlab predict` reads with (default: `task`); ocr's adds pages, so
    # the page code is no dependency of the stages that load the plain Task.
    reader: str | None = None

    def __post_init__(self) -> None:
        if self.variants and self.default_variant not in self.variants:
            raise ValueError(f"task {self.name}: default variant {self.default_variant!r} is not one of {self.variants}")


_REGISTRY: dict[str, TaskEntry] = {}


def register(entry: TaskEntry) -> None:
    """Add (or replace) a task; its section joins params.yaml's validation from the next load_params on."""
    _REGISTRY[entry.name] = entry


register(TaskEntry("kth", "seqlab.tasks.sequence.kth:KthTask", "seqlab.tasks.sequence.config:KthConfig",
                   "seqlab.tasks.sequence.kth:KthTask.generate"))
register(TaskEntry("binary_add", "seqlab.tasks.sequence.binary_add:BinaryAddTask",
                   "seqlab.tasks.sequence.config:BinaryAddConfig", "seqlab.tasks.sequence.binary_add:BinaryAddTask.generate"))
register(TaskEntry("ocr", "seqlab.tasks.ocr.recognizer.task:OcrTask", "seqlab.tasks.ocr.config:OcrConfig",
                   "seqlab.tasks.ocr.synth.trdg_render:generate_data", variants=("bilstm", "crnn"),
                   default_variant="crnn", reader="seqlab.tasks.ocr.recognizer.page_reader:OcrPageReader"))


def entries() -> tuple[TaskEntry, ...]:
    return tuple(_REGISTRY.values())


def task_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def variant_names() -> tuple[str, ...]:
    """Every task's variants (the --variant choices; check_variant says which task has which)."""
    return tuple(dict.fromkeys(v for e in _REGISTRY.values() for v in e.variants))


def entry(name: str) -> TaskEntry:
    if name not in _REGISTRY:
        raise SeqlabError(f"unknown task {name!r} (choose from {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    value = importlib.import_module(module)
    for attribute in name.split("."):  # "Class" or "Class.method"
        value = getattr(value, attribute)
    return value


def task_class(name: str) -> type[Task]:
    return _load(entry(name).task)


def reader_class(name: str) -> type[Task]:
    """The Task class `seqlab predict <name>` reads with (TaskEntry.reader, else the task's own class)."""
    known = entry(name)
    return _load(known.reader or known.task)


def config_class(name: str) -> type[TaskSection]:
    return _load(entry(name).config)


def data_generator(name: str) -> Callable[[Any, int], dict[str, Any]]:
    """What `seqlab generate <name>` runs: (the task's data section, the seed) -> summary stats for the log."""
    return _load(entry(name).generator)


def check_variant(name: str, variant: str | None) -> str | None:
    """The variant a command means: the default one for tasks that have variants, none for the others."""
    known = entry(name)
    if not known.variants:
        if variant:
            raise SeqlabError(f"task {name} has no variants (got --variant {variant})")
        return None
    variant = variant or known.default_variant
    if variant not in known.variants:
        raise SeqlabError(f"unknown {name} variant {variant!r} (choose from {', '.join(known.variants)})")
    return variant
