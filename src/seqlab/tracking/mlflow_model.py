"""A trained checkpoint as an MLflow model: `mlflow.pyfunc.load_model(uri).predict(...)` answers what
`seqlab predict` answers, because both call the task's `answers` on the model loaded by the same
safe checkpoint loader.

The model's artifacts are the checkpoint file itself (no second pickle of the weights) and the files of the
task's reading (OCR: the language model), whose settings (OCR: ocr.decode) are in the model's config
(Task.reading), so the model reads anywhere as predict reads in the project that logged it; the seqlab
package travels in the model's code folder and the requirements are the installed versions of what
predict imports, given explicitly so logging does not spend seconds inferring them.

Input, a DataFrame with one row per item, in the columns the task declares (Task.input_columns): kth
and binary_add take a column `input` of lines as typed on `seqlab predict`'s stdin; OCR takes a column
`image` of encoded image bytes (PNG, JPEG...) or a column `path` of image files. Output: columns `text` (the answer) and `error` (why an
input was refused, else empty), in input order. A frame with none of the input columns, or with a value of
another type than its column's (the integer 123 in kth's string column), is refused as a whole (an MLflow
INVALID_PARAMETER_VALUE error: HTTP 400 from `mlflow models serve`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, Schema
from torch import nn

import seqlab
from seqlab.core.errors import SeqlabError
from seqlab.core.task import NO_READING, Answer, Reading, Task

ARTIFACT_PATH = "model"  # runs:/<run id>/model
CHECKPOINT = "checkpoint"  # the pyfunc artifact key
READING = "reading"  # the model_config key of Task.reading's settings (its files are the other artifacts)
# The distributions predict imports (pip names), pinned at the versions that trained the model.
REQUIREMENTS = ("torch", "numpy", "pillow", "pydantic", "rapidfuzz", "tqdm", "pandas")

OUTPUT = Schema([ColSpec(DataType.string, "text", required=False), ColSpec(DataType.string, "error", required=False)])


def signature(task: type[Task]) -> ModelSignature:
    """The task's declared input columns (Task.input_columns) in, text and error out."""
    inputs = Schema([ColSpec(DataType[kind], name, required=required)
                     for name, (kind, required) in task.input_columns.items()])
    return ModelSignature(inputs=inputs, outputs=OUTPUT)


class SeqlabModel(PythonModel):
    """The pyfunc face of a seqlab checkpoint; MLflow makes it through pyfunc_entry.py, then calls load_context."""

    def load_context(self, context: Any) -> None:
        from seqlab.core.checkpoint import load_model

        self.task, self.model, ckpt = load_model(context.artifacts[CHECKPOINT], context.model_config["task"])
        self.meta = ckpt["config"]["meta"]
        files = {name: Path(path) for name, path in context.artifacts.items() if name != CHECKPOINT}
        self.task.use_reading(Reading(context.model_config.get(READING) or {}, files))

    # Annotated as a DataFrame, which MLflow passes through as is (the signature above does the checking).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return answers_frame(self.task, self.model, self.meta, model_input)


def answers_frame(task: Task, model: nn.Module, meta: Mapping[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """The task's answers to the rows of `frame` (see the module docstring) as a text/error frame."""
    _check_columns(task, frame)
    _check_types(task, frame)
    answers = _answers(task, model, meta, frame)
    return pd.DataFrame({"text": [a.text for a in answers], "error": [a.error for a in answers]}, dtype=object)


def _check_columns(task: Task, frame: pd.DataFrame) -> None:
    """Refuse a frame with none of the signature's columns: MLflow drops the columns it does not know and
    would hand a task whose columns are each optional (OCR) an empty frame, answered with no predictions.
    INVALID_PARAMETER_VALUE makes `mlflow models serve` answer HTTP 400 with this message."""
    names = list(task.input_columns)
    if not any(name in frame.columns for name in names):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        wanted = " or ".join(repr(n) for n in names)
        raise MlflowException(f"seqlab {task.name} model input needs a column {wanted}; the request had none "
                              "(columns outside the model's signature are dropped)", error_code=INVALID_PARAMETER_VALUE)


PYTHON_TYPES = {"string": (str,), "binary": (bytes, bytearray)}  # the signature's kinds, as pandas hands them over


def _check_types(task: Task, frame: pd.DataFrame) -> None:
    """Refuse a value of another type than its column's in the signature: MLflow's schema check lets the
    integer in `[[123]]` through a string column, and `str(123)` would then be answered as if typed."""
    for name, (kind, _) in task.input_columns.items():
        for row, value in enumerate(frame.get(name, ())):
            if value is None or (isinstance(value, float) and value != value):  # no value (NaN): the task says why
                continue
            if not isinstance(value, PYTHON_TYPES[kind]):
                from mlflow.exceptions import MlflowException
                from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

                raise MlflowException(f"seqlab {task.name} model input: column {name!r} row {row} holds {value!r} "
                                      f"({type(value).__name__}), not {kind} as the model's signature says",
                                      error_code=INVALID_PARAMETER_VALUE)


def _answers(task: Task, model: nn.Module, meta: Mapping[str, Any], frame: pd.DataFrame) -> list[Answer]:
    """Each row's input is its first column with a value (Task.input_columns); binary values (image bytes) are
    written to files first, so they take exactly the path that `seqlab predict` takes (for OCR: decoding,
    cropping, resizing)."""
    missing = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    columns = [(task.input_columns[name][0], frame.get(name, missing)) for name in task.input_columns]
    with tempfile.TemporaryDirectory(prefix=f"seqlab-{task.name}-") as tmp:
        inputs = []
        for i, row in enumerate(zip(*(values for _, values in columns))):
            inputs.append(_row_input(row, [kind for kind, _ in columns], Path(tmp) / f"input-{i}"))
        return list(task.answers(model, meta, inputs))  # read before the files go


def _row_input(row: tuple[Any, ...], kinds: list[str], spill: Path) -> str:
    for value, kind in zip(row, kinds):
        if kind == "binary" and isinstance(value, (bytes, bytearray)):
            spill.write_bytes(value)
            return str(spill)
        if kind == "string":
            return str(value)  # a row with no value at all is refused by the task ("no such file")
    return str(None)


def input_example(task: Task, meta: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(task.input_example(meta))


def log_model(run_id: str, task: Task, meta: Mapping[str, Any], checkpoint: Path, reading: Reading = NO_READING) -> str:
    """Log `checkpoint` as the MLflow model `model` of run `run_id`, reading as `reading` says (its settings in
    the model's config, its files as artifacts beside the checkpoint); return the logged model's id. By id, not
    under mlflow.start_run(run_id): the evaluate stage logs into the finished training run, which must stay
    finished with its training's duration."""
    from mlflow.models import Model

    from seqlab.tracking.runs import configure_mlflow, file_models_under

    if CHECKPOINT in reading.files:
        raise ValueError(f"a reading file may not be named {CHECKPOINT!r}")
    mlflow = configure_mlflow()
    package = Path(seqlab.__file__).parent
    file_models_under(run_id)
    with tempfile.TemporaryDirectory(prefix="seqlab-code-") as tmp:
        code = Path(tmp) / "seqlab"  # a clean copy: no bytecode caches in the model
        shutil.copytree(package, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        info = Model.log(
            artifact_path=None, name=ARTIFACT_PATH, flavor=mlflow.pyfunc, run_id=run_id, python_model=str(code / "tracking" / "pyfunc_entry.py"),
            artifacts={CHECKPOINT: str(checkpoint), **{name: str(path) for name, path in reading.files.items()}},
            code_paths=[str(code)], signature=signature(type(task)), input_example=input_example(task, meta),
            pip_requirements=[f"{name}=={version(name)}" for name in REQUIREMENTS],
            model_config={"task": task.name, READING: reading.settings},
        )
    return info.model_id


def logged_model_uri(run_id: str) -> str:
    """`models:/<id>` of the pyfunc model that run `run_id` logged. MLflow 3 keeps a logged model's files
    with the model, not under the run's artifacts, so registering `runs:/<run id>/model` works only through a
    fallback that warns "Run with id ... has no artifacts at artifact path 'model'"; the run's outputs name
    its models (this one and the ONNX export), so no search is needed."""
    from mlflow import MlflowClient

    client = MlflowClient()
    outputs = client.get_run(run_id).outputs
    for output in outputs.model_outputs if outputs else ():
        if client.get_logged_model(output.model_id).name == ARTIFACT_PATH:
            return f"models:/{output.model_id}"
    raise SeqlabError(f"MLflow run {run_id} logged no model named {ARTIFACT_PATH!r} (was it trained by seqlab?)")


def download_checkpoint(uri: str, dest: Path) -> Path:
    """The checkpoint inside the MLflow model at `uri` (models:/name@alias, models:/name/3, runs:/id/model),
    downloaded under `dest`, for the project's own safe loader."""
    import yaml

    from seqlab.tracking.runs import configure_mlflow

    mlflow = configure_mlflow()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except Exception as exc:  # noqa: BLE001 - unknown name, alias or run: MLflow raises several kinds
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeqlabError(f"{uri}: no such MLflow model in {mlflow.get_tracking_uri()} ({detail})") from None
    try:
        flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
        return local / flavor["artifacts"][CHECKPOINT]["path"]
    except (OSError, KeyError, TypeError):
        raise SeqlabError(f"{uri}: not a seqlab model (no {CHECKPOINT} artifact)") from None
