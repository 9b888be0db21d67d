"""MLflow tracking: one store at the repository root, one experiment per task, one run per training.

An experiment holds every model of its task side by side (the OCR variants and the Tesseract baseline
in `seqlab-ocr`) and is marked as classic model training (EXPERIMENT_KIND), so MLflow 3's UI opens
it on its runs and models, not on the GenAI overview of traces.

The default store is SQLite at `<repo root>/mlflow.db` with artifacts in `<repo root>/mlartifacts`,
anchored through DVC_ROOT so queued and --temp experiments (which run in `.dvc/tmp/exps/...`)
write to the same store as workspace runs. MLFLOW_TRACKING_URI overrides the store; a remote
server is probed before any training so an outage fails fast with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from seqlab.core.errors import SeqlabError
from seqlab.core.paths import repo_root, state_dir
from seqlab.core.results import HEADLINE_FILE, SPLITS_FILE
from seqlab.core.storage import write_json

if TYPE_CHECKING:  # a type only: core.task imports torch, and `seqlab train` probes the server before torch loads
    from seqlab.core.task import Reference

PROBE_TIMEOUT_S = 5.0
# The experiment tag MLflow 3's UI reads to pick an experiment's landing page; unset, it opens the GenAI
# overview. The values are the UI's ExperimentKind enum; `custom_model_development` is classic model
# training ("Traditional ML" in mlflow/assistant/skills/mlflow-onboarding/SKILL.md; MLflow's demo sets
# `genai_development` the same way, with set_experiment_tag).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
MODEL_ID_TAG = "seqlab.model_id"  # on each run: which model of the task's experiment it is (kth, ocr-crnn, ...)
EVAL_DIGEST_TAG = "seqlab.eval_digest"  # on a reference run: sha256 of the eval.json it was logged from
EVALUATION_DIR = "evaluation"  # a run's artifact folder for its evaluation's files


def experiment_name(task: str) -> str:
    """`seqlab-<task>`: one experiment for all models of a task."""
    return f"seqlab-{task}"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become comma-joined strings (MLflow params are strings)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, full))
        elif isinstance(value, list):
            flat[full] = ",".join(map(str, value))
        else:
            flat[full] = value
    return flat


def store_lock_path() -> Path:
    """The lock file that serializes opening the SQLite store (under DVC_ROOT, shared by queued runs)."""
    return state_dir() / "mlflow.lock"


def default_uri() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def configure_mlflow() -> Any:
    # Keep an unreachable server from stalling a stage in MLflow's retry loop; quiet its telemetry and the
    # per-file progress bars of model downloads (one bar per file of a model's code folder).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def file_models_under(run_id: str) -> None:
    """Make run `run_id`'s experiment the current one, before logging a model into that (finished) run by id.
    By id, not under mlflow.start_run(run_id), which would reopen the run and end it again (its duration in the
    UI would then run up to this logging); with no active run MLflow files a logged model under the current
    experiment, which must be the run's for `runs:/<run id>/<name>` to find it."""
    mlflow = configure_mlflow()
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)


@contextmanager
def store_lock() -> Iterator[None]:
    """Serialize opening a SQLite store and creating experiments across processes.

    Parallel stages (`dvc queue start -j 2`) that open a store which does not exist yet would both run
    its schema migrations (one dies: "duplicate column name") and both create the experiment.
    A remote server serializes on its own.
    """
    if not tracking_uri().startswith("sqlite:"):
        yield
        return
    lock = store_lock_path()
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock):
        yield


def _client() -> Any:
    configure_mlflow()
    from mlflow.tracking import MlflowClient

    with store_lock():
        return MlflowClient()  # opens (and on first use creates and migrates) the store


def find_run(experiment: str, tag: str, value: str) -> str | None:
    """Id of the newest run of `experiment` tagged `tag=value`, or None."""
    client = _client()
    exp = _retry(lambda: client.get_experiment_by_name(experiment))
    if exp is None:
        return None
    runs = _retry(lambda: client.search_runs([exp.experiment_id], f"tags.`{tag}` = '{value}'",
                                             order_by=["attributes.start_time DESC"], max_results=1))
    return runs[0].info.run_id if runs else None


def training_run_file(model_id: str) -> Path:
    """Where the train stage leaves the id of the MLflow run that trained `model_id` (beside the resume files:
    local, never in git or DVC, like the store the id belongs to)."""
    return state_dir() / "runs" / f"{model_id}.json"


def remember_training_run(model_id: str, model_digest: str, run_id: str) -> None:
    """Hand the run id on to the evaluate stage (the checkpoint holds none: same params, same bytes)."""
    write_json(training_run_file(model_id), {"model_digest": model_digest, "run_id": run_id})


def training_run(experiment: str, model_id: str, model_tag: str, model_digest: str) -> str | None:
    """The run that trained the model file of digest `model_digest`: the id the train stage left when it is
    for this file and in this store, else the newest run of `experiment` tagged `model_tag=model_digest`
    (e.g. a model restored from DVC's cache), else None."""
    try:
        left = json.loads(training_run_file(model_id).read_text())
        if left["model_digest"] == model_digest:
            run_id = str(left["run_id"])
            _client().get_run(run_id)  # raises when the run is not in this store
            return run_id
    except Exception:  # no file, a damaged one, another store: search instead
        pass
    return find_run(experiment, model_tag, model_digest)


def check_tracking_server() -> None:
    """Fail within seconds, before training, when a remote tracking server does not answer."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S) as resp:
            if resp.status != 200:
                raise SeqlabError(f"MLflow tracking server {uri} is unhealthy (HTTP {resp.status})")
    except urllib.error.HTTPError as exc:  # it answered, but not with "OK" (e.g. 502/503 behind a proxy)
        raise SeqlabError(f"MLflow tracking server {uri} is unhealthy (HTTP {exc.code} on /health); check the "
                          "server, or unset MLFLOW_TRACKING_URI to use the embedded store at the repository root"
                          ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SeqlabError(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it, or unset "
            "MLFLOW_TRACKING_URI to use the embedded store at the repository root"
        ) from None


@contextmanager
def server_outage(then: str) -> Iterator[None]:
    """Report a remote tracking server that stops answering during a stage as one line naming it, with
    `then` (what a rerun does) after it. check_tracking_server covers a server that is down from the start;
    MLflow wraps a refused or timed-out connection later on in an MlflowException (or, for artifact
    uploads, passes requests' own error), so the cause is looked for along the exception's chain."""
    uri = tracking_uri()
    try:
        yield
    except Exception as exc:
        reason = _connection_failure(exc) if uri.startswith(("http://", "https://")) else None
        if reason is None:
            raise
        raise SeqlabError(f"MLflow tracking server {uri} stopped answering ({reason}); start it again, then {then}"
                          ) from None


def _connection_failure(exc: BaseException) -> str | None:
    """'connection refused', 'timed out' or 'connection lost' when `exc` or one of its causes is a failure to
    reach a server (requests' and urllib3's connection and timeout errors, the socket's own), else None.
    Other OSErrors (a full disk while writing a checkpoint) are not the server's doing."""
    seen: BaseException | None = exc
    while seen is not None:
        name, module = type(seen).__name__, type(seen).__module__
        network = module.split(".")[0] in ("requests", "urllib3") and any(
            word in name for word in ("Connection", "Timeout", "ChunkedEncoding"))
        if network or isinstance(seen, ConnectionError | TimeoutError):
            text = f"{name} {seen}".lower()
            if "timeout" in text or "timed out" in text:
                return "timed out"
            # A server killed mid-request resets or drops the connection rather than refusing it.
            return "connection refused" if "refused" in text else "connection lost"
        seen = seen.__cause__ or seen.__context__
    return None


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except OSError:
        return ""


def run_tags(stage_hint: str) -> dict[str, str]:
    """Tags linking an MLflow run to its DVC experiment, baseline rev, git commit and stage."""
    tags = {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "dvc.stage": os.environ.get("DVC_STAGE", stage_hint),
        "git.commit": _git_commit(),
    }
    return {k: v for k, v in tags.items() if v}


def run_name(model_id: str, variant: str | None) -> str:
    """The DVC experiment's name, with the variant (a task's variants share one MLflow experiment);
    `<model id>-workspace` outside DVC experiments."""
    exp = os.environ.get("DVC_EXP_NAME")
    if not exp:
        return f"{model_id}-workspace"
    return f"{exp}-{variant}" if variant else exp


def log_results(run: RunLog, files: Sequence[Path]) -> None:
    """An evaluation's files (seqlab.core.results' layout) into `run`, under evaluation/: eval.json's figures as
    the run's metrics, named by its keys (`test.cer`, `generalization.accuracy`: what a person compares, the
    same names for every model of a task); splits.json and the CSV breakdowns as tables, which the UI shows as
    tables instead of a chart per figure; eval.json and the images as artifacts."""
    for f in files:
        if f.name == HEADLINE_FILE:  # its figures, and the file itself below
            run.log_metrics(flatten(json.loads(f.read_text())))
        if f.name == SPLITS_FILE or f.suffix == ".csv":
            run.log_table(f, f"{EVALUATION_DIR}/{f.stem}.json")
        else:
            run.log_artifact(f, EVALUATION_DIR)


def log_reference_run(task: str, reference: Reference) -> str | None:
    """Log `reference` (a model this project does not train, e.g. Tesseract) as a finished run of the task's
    experiment, beside the trained models, unless the store has one for the same figures: its runs are tagged
    with the digest of the eval.json they were logged from. The new run's id, or None when it was there."""
    digest = hashlib.sha256(reference.files[0].read_bytes()).hexdigest()
    with _reference_lock():  # parallel evaluate stages (queued experiments) would both find none and log it
        if find_run(experiment_name(task), EVAL_DIGEST_TAG, digest) is not None:
            return None
        tracker = Tracker(experiment_name(task), run_name=run_name(reference.model_id,
                                                                   reference.model_id.removeprefix(f"{task}-")),
                          params=reference.params,
                          tags={**run_tags(reference.model_id), MODEL_ID_TAG: reference.model_id, EVAL_DIGEST_TAG: digest})
        log_results(tracker, reference.files)
        tracker.finish()
    return tracker.run_id


@contextmanager
def _reference_lock() -> Iterator[None]:
    """Serialize logging reference runs in a SQLite store (not store_lock: find_run takes that one)."""
    if not tracking_uri().startswith("sqlite:"):
        yield
        return
    lock = state_dir() / "mlflow-references.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock):
        yield


class RunLog:
    """A handle on an existing run, by id, that logs into it and leaves its status and end time alone: the
    evaluate and export stages add to the finished training run, whose duration stays the training's."""

    def __init__(self, run_id: str, client: Any = None) -> None:
        self.mlflow = configure_mlflow()
        self.client = client or _client()
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            _retry(lambda chunk=items[i:i + 100]: self.client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _is_number(v)]
        for i in range(0, len(items), 1000):
            _retry(lambda chunk=items[i:i + 1000]: self.client.log_batch(self.run_id, metrics=chunk))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            _retry(lambda k=k, v=v: self.client.set_tag(self.run_id, k, v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            _retry(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_table(self, table: Path, artifact_file: str) -> None:
        """A CSV file or a JSON list of records as an MLflow table at `artifact_file` (a .json path), as
        MlflowClient.log_table writes one (pandas' split-oriented JSON, listed in the run's
        mlflow.loggedArtifacts tag, which the UI reads to show it as a table). Unlike log_table, a second call
        replaces the file instead of appending its rows: evaluating a model twice must not double its tables."""
        import pandas as pd
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

        frame = pd.read_csv(table) if table.suffix == ".csv" else pd.DataFrame(json.loads(table.read_text()))
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="seqlab-table-") as tmp:
            frame.to_json(Path(tmp) / name, orient="split", index=False)
            self.log_artifact(Path(tmp) / name, folder or None)
        logged = json.loads(_retry(lambda: self.client.get_run(self.run_id)).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        entry = {"path": artifact_file, "type": "table"}
        if entry not in logged:
            self.set_tags({MLFLOW_LOGGED_ARTIFACTS: json.dumps([*logged, entry])})


class Tracker(RunLog):
    """A run this process starts, or reopens to resume a training run after a crash: RUNNING until finish(),
    which sets its end time."""

    def __init__(self, experiment: str, run_id: str | None = None, *, run_name: str | None = None,
                 params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> None:
        client = _client()
        if run_id is None:
            with store_lock():
                exp_id = self._experiment_id(client, experiment)
            run_id = _retry(lambda: client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))).info.run_id
            super().__init__(run_id, client)
            if params:
                self.log_params(params)
        else:
            super().__init__(run_id, client)
            _retry(lambda: client.update_run(run_id, status="RUNNING"))

    @staticmethod
    def _experiment_id(client: Any, name: str) -> str:
        exp = _retry(lambda: client.get_experiment_by_name(name))
        if exp is not None:
            return exp.experiment_id
        # Not "is MLFLOW_TRACKING_URI set": mlflow.set_tracking_uri sets it, and MLflow's default artifact
        # root is ./mlruns under the cwd, which for a queued experiment is a temp dir that DVC deletes.
        artifacts = (repo_root() / "mlartifacts").as_uri() if tracking_uri() == default_uri() else None
        try:
            return _retry(lambda: client.create_experiment(name, artifact_location=artifacts,
                                                           tags=dict([EXPERIMENT_KIND])))
        except Exception as exc:  # another process created it first (a remote server has no lock)
            if "already exists" not in str(exc) and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
            return client.get_experiment_by_name(name).experiment_id

    def finish(self, status: str = "FINISHED") -> None:
        _retry(lambda: self.client.set_terminated(self.run_id, status=status))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _retry(fn: Any, attempts: int = 8) -> Any:
    """Retry briefly on SQLite lock contention (parallel queued experiments share one store)."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # MLflow wraps sqlite errors in several exception types
            if "database is locked" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.2 * 2**i)
    return None
