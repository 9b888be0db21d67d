"""Task registry: name (and variant) -> Task instance, imported lazily so each stage loads only its task."""

from __future__ import annotations

import importlib

from seqlab.errors import SeqlabError
from seqlab.tasks.base import Task

_TASKS = {
    "kth": ("seqlab.tasks.kth", "KthTask"),
    "binary_add": ("seqlab.tasks.binary_add", "BinaryAddTask"),
    "ocr": ("seqlab.tasks.ocr.task", "OcrTask"),
}
TASK_NAMES = tuple(_TASKS)


def get_task(name: str, variant: str | None = None) -> Task:
    if name not in _TASKS:
        raise SeqlabError(f"unknown task {name!r} (choose from {', '.join(_TASKS)})")
    module, cls = _TASKS[name]
    task_cls = getattr(importlib.import_module(module), cls)
    return task_cls(variant) if variant is not None or getattr(task_cls, "variants", None) else task_cls()
