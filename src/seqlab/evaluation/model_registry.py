"""The MLflow Model Registry: one registered model per task/variant (`seqlab-kth`, `seqlab-ocr-crnn`), a new
version for every evaluated training run, and the alias `champion` on the best one.

The alias moves only when a new version's headline test metric beats the champion's (lower CER for OCR,
higher accuracy for kth and binary_add); a tie keeps the older champion. Each version carries its metric
as tags, so the comparison reads the champion's version alone, no run lookup. `seqlab predict --model
models:/seqlab-kth@champion` then always means the best model evaluated so far.
"""

from __future__ import annotations

from dataclasses import dataclass

from filelock import FileLock

from seqlab.core.paths import state_dir
from seqlab.core.task import Task
from seqlab.tracking.mlflow_model import logged_model_uri
from seqlab.tracking.runs import configure_mlflow, store_lock

CHAMPION = "champion"
METRIC_TAG = "seqlab.test_metric"  # on each version: the headline metric's name (e.g. test.cer) ...
VALUE_TAG = "seqlab.test_value"  # ... and its value


@dataclass(frozen=True)
class Registration:
    name: str  # the registered model
    version: str  # the version made for this run
    metric: str
    value: float
    champion_before: float | None  # the champion's value before this version (None: there was none)
    promoted: bool  # this version holds the alias now

    def summary(self) -> str:
        before = "no champion before" if self.champion_before is None else f"champion had {self.champion_before:.6g}"
        verdict = f"now @{CHAMPION}" if self.promoted else f"@{CHAMPION} stays"
        return f"{self.name} version {self.version}: {self.metric}={self.value:.6g} ({before}); {verdict}"


def registered_name(model_id: str) -> str:
    return f"seqlab-{model_id}"


def beats(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def register(run_id: str, task: Task, value: float, model_uri: str | None = None) -> Registration:
    """Register run `run_id`'s model (`model_uri`, default: the one its training logged) as a new version of
    `seqlab-<task's model id>`, tagged with the task's headline metric (Task.headline_metric) and its `value`,
    and give it the champion alias if it beats the holder (in Task.headline_mode's direction)."""
    mlflow = configure_mlflow()
    from mlflow.exceptions import MlflowException

    metric, mode = task.headline_metric, task.headline_mode
    value = float(value)
    name = registered_name(task.model_id)
    client = mlflow.MlflowClient()
    # One decision at a time: parallel queued experiments evaluate versions of the same model. The store lock
    # serializes a SQLite store; the registry lock (a file under the project's state dir, which queued
    # experiments share) also serializes them on a tracking server, where two evaluations registering and
    # setting the alias at once made one fail (registered-models/alias: 400).
    with store_lock(), FileLock(state_dir() / "registry.lock"):
        version = mlflow.register_model(model_uri or logged_model_uri(run_id), name,
                                        tags={METRIC_TAG: metric, VALUE_TAG: repr(value)}).version
        try:
            holder = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:  # no alias yet
            holder = None
        best = float(holder.tags[VALUE_TAG]) if holder and holder.tags.get(METRIC_TAG) == metric else None
        promoted = beats(value, best, mode)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
    return Registration(name, str(version), metric, value, best, promoted)
