"""Checkpoints: self-describing, written atomically, loaded safely.

A checkpoint is a plain dict (format tag, task, model config, state dict, metadata), so it loads
with `torch.load(weights_only=True)`: a file crafted to run code when unpickled is refused
instead of executed. Predict needs nothing but the checkpoint.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from seqlab.atomic import atomic_path
from seqlab.errors import CheckpointError

FORMAT = "seqlab-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Load a seqlab checkpoint; refuse unsafe pickles, foreign files and other tasks' models."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (train it first: dvc repro)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise CheckpointError(f"{path}: refused to load an unsafe or foreign checkpoint ({first})") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqlab checkpoint")
    if task is not None and ckpt.get("task") != task:
        raise CheckpointError(f"{path}: checkpoint is for task {ckpt.get('task')!r}, not {task!r}")
    return ckpt
