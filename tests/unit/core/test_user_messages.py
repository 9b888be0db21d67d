"""One clear line for what a user gets wrong or asks for: files given as --model that are no checkpoint,
the name a downloaded model goes by in errors, evaluate's short summary, and a pyfunc request with none
of the model's columns. In-process and fast; the CLI and `mlflow models serve` paths are in
tests/e2e/servers/test_mlflow_models.py and tests/e2e/faults/test_checkpoints.py."""

from __future__ import annotations

import io
import pickle

import pandas as pd
import pytest
import torch

from seqlab.core.checkpoint import FORMAT, load_checkpoint
from seqlab.core.errors import CheckpointError


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("content, expected", [
    (b"9 7 0 5 6\n1 0\n", "not a seqlab checkpoint (not a PyTorch archive)"),  # torch: "pop from empty list"
    (b"hello world\n", "not a seqlab checkpoint (not a PyTorch archive)"),  # torch: KeyError 101
    (b'{"task": "kth"}\n', "not a seqlab checkpoint (not a PyTorch archive)"),
    (pickle.dumps({"a": 1}, protocol=2), "not a seqlab checkpoint (not a PyTorch archive)"),
    (b"", "not a seqlab checkpoint (empty file)"),
    (_torch_bytes({"format": FORMAT, "task": "kth"})[:300],
     "not a readable checkpoint: a damaged or truncated PyTorch archive (PytorchStreamReader failed reading zip"),
])
def test_files_that_are_no_checkpoint_say_what_they_are(tmp_path, content, expected):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, "kth")
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message and len(message.removeprefix(str(path))) < 160, message


def test_errors_name_the_model_uri_not_the_download(tmp_path):
    path = tmp_path / "seqlab-model-xyz" / "checkpoint.pt"
    path.parent.mkdir()
    path.write_bytes(_torch_bytes({"format": FORMAT, "task": "kth"}))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, "binary_add", name="models:/seqlab-kth@champion")
    assert str(err.value) == "models:/seqlab-kth@champion: checkpoint is for task 'kth', not 'binary_add'"


def test_evaluate_prints_the_headline_metric_per_split():
    from seqlab.core.registry import task_class
    from seqlab.evaluation.evaluate import headline

    metrics = {"test": {"cer": 0.0512, "wer": 0.2, "count": 10}, "test_reserved_lines": {"cer": 0.25, "count": 5}}
    assert headline(task_class("ocr"), "ocr-crnn", metrics).splitlines() == [
        "[ocr-crnn] cer by split (all figures: metrics/ocr-crnn/splits.json)",
        "  test                 0.0512",
        "  test_reserved_lines  0.2500",
    ]
    kth = headline(task_class("kth"), "kth", {"test": {"accuracy": 0.99, "n": 5}, "generalization": {"accuracy": 0.9}})
    assert kth.splitlines()[1:] == ["  test            0.9900", "  generalization  0.9000"]


@pytest.mark.parametrize("task, frame", [
    ("ocr", pd.DataFrame(index=range(2))),  # what MLflow passes on once it dropped unknown columns
    ("kth", pd.DataFrame({"inputs": ["1 2 3"]})),
])
def test_a_frame_without_the_models_columns_is_refused_as_invalid(task, frame):
    from mlflow.exceptions import MlflowException

    from seqlab.core.registry import task_class
    from seqlab.tracking.mlflow_model import answers_frame

    with pytest.raises(MlflowException) as err:
        answers_frame(task_class(task), None, {}, frame)  # type: ignore[arg-type]  # refused before the model is used
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and err.value.get_http_status_code() == 400
    assert "needs a column" in err.value.message


def test_default_paths_are_found_from_any_folder_of_the_project(tmp_path, monkeypatch):
    """`seqlab predict` run in a subfolder looks for the pipeline's model at the project root, not in the
    subfolder; at the root the default stays the relative path the stages write."""
    from seqlab.core.paths import in_workspace, model_path

    (tmp_path / ".dvc").mkdir()
    (tmp_path / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert in_workspace(model_path("kth")) == model_path("kth")
    monkeypatch.chdir(tmp_path / "src" / "deep")
    assert in_workspace(model_path("kth")) == tmp_path.resolve() / "models" / "kth.pt"
    assert in_workspace(tmp_path / "x.pt") == tmp_path / "x.pt"


def test_predict_in_a_subfolder_names_the_model_at_the_project_root(tmp_path, monkeypatch, capsys):
    from seqlab import cli

    (tmp_path / ".dvc").mkdir()
    (tmp_path / "notes").mkdir()
    monkeypatch.chdir(tmp_path / "notes")
    monkeypatch.setattr("sys.stdin", io.StringIO("9 7 0 5 6\n"))
    assert cli.main(["predict", "kth"]) == 1
    assert capsys.readouterr().err.startswith(f"seqlab: error: {tmp_path.resolve() / 'models' / 'kth.pt'}: ")


def test_an_onnx_file_without_the_onnx_engine_names_the_flag(tmp_path, capsys):
    from seqlab import cli

    model = tmp_path / "kth.onnx"
    model.write_bytes(b"\x08\x07")  # never read: the suffix says what it is
    assert cli.main(["predict", "kth", "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"seqlab: error: {model}: an ONNX export")
    assert err.rstrip().endswith("pass --engine onnxruntime")


def test_a_value_of_another_type_than_the_signature_says_is_refused():
    """A served kth model got `[[123]]`: MLflow's schema check let the integer through its string column."""
    from mlflow.exceptions import MlflowException

    from seqlab.core.registry import task_class
    from seqlab.tracking.mlflow_model import answers_frame

    with pytest.raises(MlflowException) as err:
        answers_frame(task_class("kth"), None, {}, pd.DataFrame({"input": ["9 7 0", 123]}))  # type: ignore[arg-type]
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "column 'input' row 1 holds 123 (int), not string" in err.value.message
