"""Where things live: the repository root and the per-task data, model and metrics paths.

Stages run with the repository as working directory (DVC guarantees it), also inside the
temporary copies that queued and --temp experiments use, so data/models/metrics paths are
relative. Only state that must outlive such a copy (the MLflow store, resumable checkpoints)
is anchored at the real repository root, which DVC passes as DVC_ROOT. A command a person types
(`seqlab predict` from a subfolder) finds its defaults through `in_workspace`, against the root of the
DVC project it runs in, not the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")


def repo_root() -> Path:
    """The real repository root: DVC_ROOT under DVC, else the nearest parent holding .dvc/ or .git/."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir() or (candidate / ".git").exists():
            return candidate
    return here


def workspace_root() -> Path:
    """The root of the DVC project the current directory is in (the nearest parent holding .dvc/), else the
    current directory. Unlike repo_root it ignores DVC_ROOT: inside a --temp or queued experiment that is the
    real repository, while the stage's data and models are in the temporary copy it runs in."""
    here = Path.cwd().resolve()
    return next((c for c in (here, *here.parents) if (c / ".dvc").is_dir()), here)


def in_workspace(path: Path) -> Path:
    """A default path (models/kth.pt, params.yaml) as seen from the current directory: unchanged at the
    project root (so messages and outputs read as before), else anchored at the root."""
    root = workspace_root()
    return path if path.is_absolute() or root == Path.cwd().resolve() else root / path


def data_dir(task: str) -> Path:
    return DATA / task


def fonts_manifest() -> Path:
    """data/ocr-fonts.json: the OCR training fonts (seqlab fonts writes it, the OCR generate stage reads it)."""
    return DATA / "ocr-fonts.json"


def model_id(task: str, variant: str | None) -> str:
    """models/<id>.pt and metrics/<id>/: the task name, or task-variant (ocr-crnn)."""
    return f"{task}-{variant}" if variant else task


def model_path(model_id: str) -> Path:
    """models/<id>.pt, where id is the task (kth) or task-variant (ocr-crnn)."""
    return MODELS / f"{model_id}.pt"


def metrics_dir(model_id: str) -> Path:
    return METRICS / model_id


def state_dir() -> Path:
    """Scratch state that survives a killed stage (resumable checkpoints); never in git or DVC."""
    return repo_root() / ".seqlab"
