"""Checkpoints: self-describing, written atomically, loaded safely.

A checkpoint is a plain dict (format tag, task, model config, state dict, metadata), so it loads
with `torch.load(weights_only=True)`: a file crafted to run code when unpickled is refused
instead of executed. Predict needs nothing but the checkpoint: `load_model` rebuilds the task and its
model from it (evaluate, predict and the MLflow model all load through it).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seqlab.core.errors import CheckpointError
from seqlab.core.registry import task_class
from seqlab.core.storage import atomic_path

if TYPE_CHECKING:
    from torch import nn

    from seqlab.core.task import Task

FORMAT = "seqlab-checkpoint/1"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive; every seqlab checkpoint starts with this
PICKLE_MAGIC = b"\x80"  # a plain pickle (protocol >= 2), the legacy format torch's safe loader inspects
MODEL_TAG = "seqlab.model_sha256"  # MLflow tag on the training run: the digest of the model file it wrote


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    # Saved through a file handle: given a path, torch names the archive's root folder after the (random)
    # temporary file name, so identical checkpoints would get different bytes and DVC hashes.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save({"format": FORMAT, **payload}, fh)


def load_checkpoint(path: str | Path, task: str | None = None, *, name: str | None = None) -> dict[str, Any]:
    """Load a seqlab checkpoint; refuse unsafe pickles, foreign files and other tasks' models.
    `name`: what errors call the file (a models:/ URI, where `path` is a temporary download)."""
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise CheckpointError(f"{shown}: checkpoint not found (train it first: dvc repro; predict takes another with --model)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's first line suggests weights_only=False, the one thing not to do: say what was refused instead.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        code = next((line for line in lines if "GLOBAL" in line), None)
        if code:
            raise CheckpointError(f"{shown}: refused to load: unpickling it could run code, and a checkpoint holds "
                                  f"only tensors and plain values ({code})") from None
        if not _head(path).startswith((ZIP_MAGIC, PICKLE_MAGIC)):  # text, an image...: no pickle to refuse
            raise CheckpointError(f"{shown}: {_unreadable(path, exc)}") from None
        detail = next((line for line in lines if "Unsupported" in line), "not plain data")
        raise CheckpointError(f"{shown}: not a readable checkpoint, refused by the safe loader ({detail})") from None
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign files fail in many ways
        raise CheckpointError(f"{shown}: {_unreadable(path, exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{shown}: not a seqlab checkpoint")
    if task is not None and ckpt.get("task") != task:
        raise CheckpointError(f"{shown}: checkpoint is for task {ckpt.get('task')!r}, not {task!r}")
    return ckpt


def load_model(path: str | Path, task_name: str, *, name: str | None = None) -> tuple[Task, nn.Module, dict[str, Any]]:
    """Rebuild a trained model from nothing but its checkpoint (config and meta live inside it).

    The config's model dict is the on-disk form of the params model section (the constructor's arguments),
    read back into that section by the task. `name`: what errors call the checkpoint
    (default: its path).
    """
    ckpt = load_checkpoint(path, task_name, name=name)
    shown = name or str(path)
    config = ckpt["config"]
    try:
        task = task_class(config["task"]).from_checkpoint(config)
        model = task.build_model(task.model_section(config["model"]), config["meta"])  # the dict: its on-disk form
    except (KeyError, TypeError, ValueError) as exc:  # a hand-edited or foreign config
        raise CheckpointError(f"{shown}: unusable model config ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, KeyError, TypeError) as exc:  # a hand-edited file whose weights do not fit its config
        raise CheckpointError(f"{shown}: weights do not match the model config ({str(exc).splitlines()[0]})") from None
    model.eval()
    return task, model, ckpt


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(len(ZIP_MAGIC))


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch could not read `path`, in words: for a file that is no archive at all, torch's own error is
    whatever its fallback pickle reader tripped on (`pop from empty list`, `KeyError: 101`)."""
    head = _head(path)
    if not head:
        return "not a seqlab checkpoint (empty file)"
    if not head.startswith(ZIP_MAGIC):
        return "not a seqlab checkpoint (not a PyTorch archive)"
    detail = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"not a readable checkpoint: a damaged or truncated PyTorch archive ({detail})"
