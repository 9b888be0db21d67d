"""The evaluate stage for every task: load the trained checkpoint, score the test splits, write
metrics/<id>/eval.json plus per-length tables and plots, and attach them to the training run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from seqlab.core import paths
from seqlab.core.checkpoint import load_model
from seqlab.core.plots import write_csv
from seqlab.core.registry import model_id
from seqlab.core.storage import write_json
from seqlab.core.task import Task


def evaluate(task_name: str, variant: str | None = None) -> dict[str, Any]:
    """Score models/<id>.pt on the test splits; write eval.json, the tables (CSV) and figures (PNG)."""
    model_file = paths.model_path(model_id(task_name, variant))
    task, model, _ = load_model(model_file, task_name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    with torch.no_grad():
        metrics, tables, figures = task.evaluate(model, device)
    out = paths.metrics_dir(task.model_id)
    write_json(out / "eval.json", metrics)
    files = [out / "eval.json"]
    for name, rows in tables.items():
        write_csv(out / f"{name}.csv", rows)
        files.append(out / f"{name}.csv")
    for name, draw in figures.items():
        draw(out / name)
        files.append(out / name)
    _attach_to_run(task, model_file, metrics, files)
    return metrics


def headline(task: type[Task], model_id: str, metrics: dict[str, Any]) -> str:
    """The task's headline test metric on every split that has it, a line each; eval.json has the rest."""
    key = task.headline_metric.split(".", 1)[1]  # "test.cer" -> "cer"
    splits = {split: values[key] for split, values in metrics.items() if isinstance(values, dict) and key in values}
    width = max(map(len, splits), default=0)
    lines = [f"[{model_id}] {key} by split (all figures: {paths.metrics_dir(model_id) / 'eval.json'})"]
    lines += [f"  {split:<{width}}  {value:.4f}" for split, value in splits.items()]
    return "\n".join(lines)


def _attach_to_run(task: Task, model_file: Path, metrics: dict[str, Any], files: list[Path]) -> None:
    """Log test metrics and plots into the MLflow run that trained this model, when the store has it, and
    register its MLflow model as a new version (champion if its test metric is the best so far).

    The train stage hands the run id on beside the resume files, for the model file's digest; without it
    (a model restored from DVC's cache) the run is searched for by that digest (a tag set by training). The
    checkpoint itself holds no run id, so identical params give byte-identical models. Metric names are eval.json's keys
    (`test.cer`, `generalization.accuracy`), the same for every model of a task and for Tesseract.
    """
    from seqlab.core.checkpoint import MODEL_TAG, file_digest
    from seqlab.evaluation.model_registry import register
    from seqlab.tracking.runs import Tracker, experiment_name, flatten, training_run

    run_id = training_run(experiment_name(task.name), task.model_id, MODEL_TAG, file_digest(model_file))
    if run_id is None:  # e.g. a model restored from DVC's cache whose run lives in another store
        print(f"note: no MLflow run in this store trained {model_file}; test metrics are in metrics/ only",
              file=sys.stderr)
        return
    tracker = Tracker("", run_id=run_id)
    flat = flatten(metrics)
    tracker.log_metrics(flat)
    for f in files:
        tracker.log_artifact(f, "evaluation")
    tracker.finish()
    print(f"[{task.model_id}] {register(run_id, task, flat).summary()}", file=sys.stderr)
