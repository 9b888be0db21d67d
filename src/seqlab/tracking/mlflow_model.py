"""A trained checkpoint as an MLflow model: `mlflow.pyfunc.load_model(uri).predict(...)` answers what
`seqlab predict` answers, because both call the task's `answers` on the model loaded by the same
safe checkpoint loader.

The model's one artifact is the checkpoint file itself (no second pickle of the weights); the seqlab
package travels in the model's code folder and the requirements are the installed versions of what
predict imports, given explicitly so logging does not spend seconds inferring them.

Input, a DataFrame with one row per item: kth and binary_add take a column `input` of
lines as typed on `seqlab predict`'s stdin; OCR takes a column `image` of encoded image bytes (PNG,
JPEG...) or a column `path` of image files. Output: columns `text` (the answer) and `error` (why an
input was refused, else empty), in input order. A frame with none of the input columns is refused as a
whole (an MLflow INVALID_PARAMETER_VALUE error: HTTP 400 from `mlflow models serve`).
"""

from __future__ import annotations

import io
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
from seqlab.errors import SeqlabError
from seqlab.tasks.base import Answer, Task

ARTIFACT_PATH = "model"  # runs:/<run id>/model
CHECKPOINT = "checkpoint"  # the pyfunc artifact key
# The distributions predict imports (pip names), pinned at the versions that trained the model.
REQUIREMENTS = ("torch", "numpy", "pillow", "pydantic", "rapidfuzz", "tqdm", "pandas")

OUTPUT = Schema([ColSpec(DataType.string, "text", required=False), ColSpec(DataType.string, "error", required=False)])


def signature(task_name: str) -> ModelSignature:
    if task_name == "ocr":
        inputs = Schema([ColSpec(DataType.binary, "image", required=False),
                         ColSpec(DataType.string, "path", required=False)])
    else:
        inputs = Schema([ColSpec(DataType.string, "input")])
    return ModelSignature(inputs=inputs, outputs=OUTPUT)


class SeqlabModel(PythonModel):
    """The pyfunc face of a seqlab checkpoint; MLflow makes it through pyfunc_entry.py, then calls load_context."""

    def load_context(self, context: Any) -> None:
        from seqlab.evaluation import load_model

        self.task, self.model, ckpt = load_model(context.artifacts[CHECKPOINT], context.model_config["task"])
        self.meta = ckpt["config"]["meta"]

    # Annotated as a DataFrame, which MLflow passes through as is (the signature above does the checking).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return answers_frame(self.task, self.model, self.meta, model_input)


def answers_frame(task: Task, model: nn.Module, meta: Mapping[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """The task's answers to the rows of `frame` (see the module docstring) as a text/error frame."""
    _check_columns(task.name, frame)
    answers = _read_images(task, model, meta, frame) if task.name == "ocr" else list(
        task.answers(model, meta, [str(line) for line in frame["input"]]))
    return pd.DataFrame({"text": [a.text for a in answers], "error": [a.error for a in answers]}, dtype=object)


def _check_columns(task_name: str, frame: pd.DataFrame) -> None:
    """Refuse a frame with none of the signature's columns: MLflow drops the columns it does not know and
    would hand OCR (whose columns are each optional) an empty frame, answered with no predictions.
    INVALID_PARAMETER_VALUE makes `mlflow models serve` answer HTTP 400 with this message."""
    names = signature(task_name).inputs.input_names()
    if not any(name in frame.columns for name in names):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        wanted = " or ".join(repr(n) for n in names)
        raise MlflowException(f"seqlab {task_name} model input needs a column {wanted}; the request had none "
                              "(columns outside the model's signature are dropped)", error_code=INVALID_PARAMETER_VALUE)


def _read_images(task: Task, model: nn.Module, meta: Mapping[str, Any], frame: pd.DataFrame) -> list[Answer]:
    """Paths go to the task as they are; image bytes are written to files first, so both take
    exactly the path that `seqlab predict ocr` takes (decoding, cropping, resizing)."""
    missing = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    rows = [image if isinstance(image, (bytes, bytearray)) else path
            for image, path in zip(frame.get("image", missing), frame.get("path", missing))]
    with tempfile.TemporaryDirectory(prefix="seqlab-ocr-") as tmp:
        paths = []
        for i, item in enumerate(rows):
            if isinstance(item, (bytes, bytearray)):
                paths.append(str(Path(tmp) / f"image-{i}"))
                Path(paths[-1]).write_bytes(item)
            else:
                paths.append(str(item))  # a row with neither is refused by the reader: "no such file"
        return list(task.answers(model, meta, paths))  # read before the files go


def input_example(task: Task, meta: Mapping[str, Any]) -> pd.DataFrame:
    """A real input of the task: a digit line, two binary numbers, or the first OCR validation image as PNG
    (training has the validation split at hand; the test splits may not be generated yet)."""
    if task.name == "kth":
        return pd.DataFrame({"input": [" ".join(str(d % 10) for d in range(3, 3 + max(5, meta["k"])))]})
    if task.name == "binary_add":
        return pd.DataFrame({"input": ["1011 110"]})
    from PIL import Image

    image = task.load_split("val").images[0]
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    return pd.DataFrame({"image": [png.getvalue()]})


def log_model(run_id: str, task: Task, meta: Mapping[str, Any], checkpoint: Path) -> str:
    """Log `checkpoint` as the MLflow model `model` of run `run_id`; return the logged model's id."""
    from seqlab.tracking import configure_mlflow

    mlflow = configure_mlflow()
    package = Path(seqlab.__file__).parent
    with tempfile.TemporaryDirectory(prefix="seqlab-code-") as tmp:
        code = Path(tmp) / "seqlab"  # a clean copy: no bytecode caches in the model
        shutil.copytree(package, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_PATH, python_model=str(code / "pyfunc_entry.py"), artifacts={CHECKPOINT: str(checkpoint)},
                code_paths=[str(code)], signature=signature(task.name), input_example=input_example(task, meta),
                pip_requirements=[f"{name}=={version(name)}" for name in REQUIREMENTS], model_config={"task": task.name},
            )
    return info.model_id


def download_checkpoint(uri: str, dest: Path) -> Path:
    """The checkpoint inside the MLflow model at `uri` (models:/name@alias, models:/name/3, runs:/id/model),
    downloaded under `dest`, for the project's own safe loader."""
    import yaml

    from seqlab.tracking import configure_mlflow

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
