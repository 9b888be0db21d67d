"""The evaluate stage for every task: load the trained checkpoint, score the test splits, write
metrics/<id>/eval.json plus per-length tables and plots, and attach them to the training run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlab import paths
from seqlab.checkpoint import load_checkpoint
from seqlab.errors import CheckpointError
from seqlab.plots import write_csv
from seqlab.storage import write_json
from seqlab.tasks import get_task
from seqlab.tasks.base import Task


def load_model(path: str | Path, task_name: str) -> tuple[Task, nn.Module, dict[str, Any]]:
    """Rebuild a trained model from nothing but its checkpoint (config and meta live inside it)."""
    ckpt = load_checkpoint(path, task_name)
    config = ckpt["config"]
    task = get_task(config["task"], config.get("variant"))
    task.configure(config)
    model = task.build_model(config["model"], config["meta"])
    try:
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, KeyError, TypeError) as exc:  # a hand-edited file whose weights do not fit its config
        raise CheckpointError(f"{path}: weights do not match the model config ({str(exc).splitlines()[0]})") from None
    model.eval()
    return task, model, ckpt


def evaluate(task: Task) -> dict[str, Any]:
    model_file = paths.model_path(task.model_id)
    _, model, ckpt = load_model(model_file, task.name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    with torch.no_grad():
        metrics, tables = task.evaluate(model, device)
    out = paths.metrics_dir(task.model_id)
    write_json(out / "eval.json", metrics)
    files = [out / "eval.json"]
    for name, rows in tables.items():
        write_csv(out / f"{name}.csv", rows)
        files.append(out / f"{name}.csv")
    files += sorted(p for p in out.glob("*.png") if p.name != "history.png")
    _attach_to_run(task, model_file, metrics, files)
    return metrics


def _attach_to_run(task: Task, model_file: Path, metrics: dict[str, Any], files: list[Path]) -> None:
    """Log test metrics and plots into the MLflow run that trained this model, when the store has it.

    The run is found by the model file's digest (a tag set by training), so the checkpoint itself holds
    no run id and identical params give byte-identical models.
    """
    from seqlab.checkpoint import MODEL_TAG, file_digest
    from seqlab.params import flatten
    from seqlab.tracking import Tracker, find_run

    run_id = find_run(f"seqlab-{task.model_id}", MODEL_TAG, file_digest(model_file))
    if run_id is None:  # e.g. a model restored from DVC's cache whose run lives in another store
        print(f"note: no MLflow run in this store trained {model_file}; test metrics are in metrics/ only",
              file=sys.stderr)
        return
    tracker = Tracker("", run_id=run_id)
    tracker.log_metrics({f"test.{k}": v for k, v in flatten(metrics).items()})
    for f in files:
        tracker.log_artifact(f, "evaluation")
    tracker.finish()
