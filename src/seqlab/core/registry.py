"""Task registry: task names, their variants and model ids; task classes are imported lazily, so each stage
loads only its own task (and `seqlab validate` none: this module stays free of torch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from seqlab.errors import SeqlabError

if TYPE_CHECKING:
    from seqlab.tasks.base import Task

_TASKS = {
    "kth": ("seqlab.tasks.kth", "KthTask"),
    "binary_add": ("seqlab.tasks.binary_add", "BinaryAddTask"),
    "ocr": ("seqlab.tasks.ocr.task", "OcrTask"),
}
TASK_NAMES = tuple(_TASKS)
# Tasks with several models: each variant has its own params section (ocr.<variant>), model and metrics.
VARIANTS: dict[str, tuple[str, ...]] = {"ocr": ("bilstm", "crnn")}
DEFAULT_VARIANT = {"ocr": "crnn"}


def task_class(name: str) -> type[Task]:
    if name not in _TASKS:
        raise SeqlabError(f"unknown task {name!r} (choose from {', '.join(_TASKS)})")
    module, cls = _TASKS[name]
    return getattr(importlib.import_module(module), cls)


def check_variant(name: str, variant: str | None) -> str | None:
    """The variant a command means: the default one for tasks that have variants, none for the others."""
    if name not in VARIANTS:
        if variant:
            raise SeqlabError(f"task {name} has no variants (got --variant {variant})")
        return None
    variant = variant or DEFAULT_VARIANT[name]
    if variant not in VARIANTS[name]:
        raise SeqlabError(f"unknown {name} variant {variant!r} (choose from {', '.join(VARIANTS[name])})")
    return variant


def model_id(name: str, variant: str | None) -> str:
    """models/<id>.pt and metrics/<id>/: the task name, or task-variant (ocr-crnn)."""
    return f"{name}-{variant}" if variant else name
