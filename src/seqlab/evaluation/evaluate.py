"""The evaluate stage for every task: load the trained checkpoint, score the test splits, write metrics/<id>/
(seqlab.core.results: eval.json's headline figures, splits.json, the breakdown tables and plots), and add them
to the training run in MLflow."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from seqlab.core import paths
from seqlab.core.checkpoint import load_model
from seqlab.core.config import Params
from seqlab.core.registry import model_id
from seqlab.core.results import SPLITS_FILE, write_results
from seqlab.core.task import NO_READING, Reading, Task


def evaluate(task_name: str, variant: str | None = None, params: Params | None = None) -> dict[str, dict[str, Any]]:
    """Score models/<id>.pt on the test splits, reading as `params` say (OCR: decoding); write metrics/<id>/;
    return each split's figures."""
    model_file = paths.model_path(model_id(task_name, variant))
    task, model, ckpt = load_model(model_file, task_name)
    reading = task.reading(params) if params is not None else NO_READING
    task.use_reading(reading)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    with torch.no_grad():
        evaluation = task.evaluate(model, device)
    files = write_results(paths.metrics_dir(task.model_id), evaluation, task.headline_metric, task.headline_splits)
    log_evaluation(task, model_file, files, evaluation.metrics, ckpt["config"]["meta"], reading)
    return evaluation.metrics


def headline(task: type[Task], model_id: str, metrics: dict[str, Any]) -> str:
    """The task's headline test metric on every split that has it, a line each; splits.json has the rest."""
    key = task.headline_metric.split(".", 1)[1]  # "test.cer" -> "cer"
    splits = {split: values[key] for split, values in metrics.items() if isinstance(values, dict) and key in values}
    width = max(map(len, splits), default=0)
    lines = [f"[{model_id}] {key} by split (all figures: {paths.metrics_dir(model_id) / SPLITS_FILE})"]
    lines += [f"  {split:<{width}}  {value:.4f}" for split, value in splits.items()]
    return "\n".join(lines)


def log_evaluation(task: Task, model_file: Path, files: list[Path], metrics: dict[str, dict[str, Any]],
                   meta: Mapping[str, Any], reading: Reading) -> None:
    """Add the evaluation to the MLflow run that trained this model, when the store has it, and register its
    MLflow model as a new version (champion if its test metric is the best so far); then log the task's
    references (OCR: the Tesseract baseline) when the store lacks them. A task that reads with params
    (Task.reads_with_params: OCR's decoding) has its MLflow model logged here, reading as it was scored
    (`reading`, with the checkpoint's `meta`), and that model is registered; each evaluation logs its own.

    The run is finished and stays so: its metrics, tables and files are logged by id, without reopening it, so
    its duration in the UI is the training's. The train stage hands the run id on beside the resume files, for
    the model file's digest; without it (a model restored from DVC's cache) the run is searched for by that
    digest (a tag set by training). The checkpoint itself holds no run id, so identical params give
    byte-identical models.
    """
    from seqlab.core.checkpoint import MODEL_TAG, file_digest
    from seqlab.evaluation.model_registry import register
    from seqlab.tracking.runs import RunLog, experiment_name, log_reference_run, log_results, training_run

    run_id = training_run(experiment_name(task.name), task.model_id, MODEL_TAG, file_digest(model_file))
    if run_id is None:  # e.g. a model restored from DVC's cache whose run lives in another store
        print(f"note: no MLflow run in this store trained {model_file}; test metrics are in metrics/ only",
              file=sys.stderr)
    else:
        log_results(RunLog(run_id), files)
        split, key = task.headline_metric.split(".", 1)
        model_uri = None
        if task.reads_with_params:
            from seqlab.tracking.mlflow_model import log_model

            model_uri = f"models:/{log_model(run_id, task, meta, model_file, reading)}"
        registration = register(run_id, task, metrics[split][key], model_uri)
        print(f"[{task.model_id}] {registration.summary()}", file=sys.stderr)
    for reference in task.references():
        if (reference_run := log_reference_run(task.name, reference)) is not None:
            print(f"[{reference.model_id}] logged as MLflow run {reference_run} of {experiment_name(task.name)}, "
                  f"from {reference.files[0].parent}", file=sys.stderr)
