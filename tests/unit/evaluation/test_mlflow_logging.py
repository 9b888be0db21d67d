"""What the evaluate and export stages leave in MLflow: the training run stays finished with its training's
duration, its metrics are the few eval.json holds and its breakdowns are tables, and the Tesseract baseline
is logged from its files once per eval.json.

In-process in a scratch repository (its own SQLite store), as test_adding_a_task does; runs are read with
sqlite3 (tests.support.mlflow_runs).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from seqlab import cli
from tests.support import mlflow_runs, tiny_params


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch repository with tiny params, where the MLflow store and the stage state go."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # restored (unset) after the test: MLflow sets it
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return tmp_path


def _artifact(run: dict, path: str) -> Path:
    return Path(urlparse(run["artifact_uri"]).path) / path


def _table(run: dict, path: str) -> list[dict]:
    table = json.loads(_artifact(run, path).read_text())  # pandas' split orient, as MlflowClient.log_table writes
    return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]


@pytest.mark.slow  # trains binary_add on tiny params (seconds), evaluates it twice and exports it
def test_evaluate_and_export_log_into_the_finished_training_run(repo: Path, capfd: pytest.CaptureFixture[str]):
    for argv in (["generate", "binary_add"], ["train", "binary_add"]):
        assert cli.main(argv) == 0, argv
    db = repo / "mlflow.db"
    (trained,) = mlflow_runs(db, "seqlab-binary_add")
    assert trained["status"] == "FINISHED" and trained["end"] is not None
    time.sleep(1.1)  # a reopened or re-ended run would get a later end time

    capfd.readouterr()
    for _ in range(2):  # a second evaluation (e.g. `dvc repro -f`) adds a version, not rows
        assert cli.main(["evaluate", "binary_add"]) == 0
    # Registered from the logged model itself, so MLflow has no runs:/ fallback to warn about.
    assert "has no artifacts at artifact path" not in capfd.readouterr().err
    assert cli.main(["export", "binary_add"]) == 0

    (run,) = mlflow_runs(db, "seqlab-binary_add")
    assert (run["status"], run["start"], run["end"]) == (trained["status"], trained["start"], trained["end"])
    # Scalars: what training logs plus eval.json's keys; every breakdown is a table.
    evaluation = {k for k in run["metrics"] if k not in trained["metrics"]}
    assert evaluation == {"test.exact_match", "generalization.exact_match"}
    assert json.loads((repo / "metrics/binary_add/eval.json").read_text()) == {
        "generalization": {"exact_match": run["metrics"]["generalization.exact_match"]},
        "test": {"exact_match": run["metrics"]["test.exact_match"]}}
    assert len(run["metrics"]) < 20 and not [k for k in run["metrics"] if "by_" in k]
    tables = {t["path"] for t in json.loads(run["tags"]["mlflow.loggedArtifacts"]) if t["type"] == "table"}
    assert tables == {"evaluation/by_length.json", "evaluation/splits.json"}
    lengths = (repo / "metrics/binary_add/by_length.csv").read_text().splitlines()[1:]
    assert len(_table(run, "evaluation/by_length.json")) == len(lengths)  # replaced, not appended to
    assert [r["split"] for r in _table(run, "evaluation/splits.json")] == ["test", "generalization"]
    assert _artifact(run, "evaluation/by_length.png").is_file() and _artifact(run, "evaluation/eval.json").is_file()
    con = sqlite3.connect(db)  # the ONNX model is the run's, in the run's experiment (where runs:/<id>/onnx looks)
    try:
        models = con.execute("SELECT m.name FROM logged_models m JOIN runs r ON r.run_uuid = m.source_run_id "
                             "WHERE r.run_uuid = ? AND m.experiment_id = r.experiment_id", (run["id"],)).fetchall()
        versions = con.execute("SELECT run_id, source FROM model_versions WHERE name = 'seqlab-binary_add'").fetchall()
    finally:
        con.close()
    assert sorted(models) == [("model",), ("onnx",)]
    assert [v[0] for v in versions] == [run["id"]] * 2 and all(v[1].startswith("models:/") for v in versions)


def test_the_tesseract_baseline_is_logged_from_its_files_once(repo: Path, capsys: pytest.CaptureFixture[str]):
    from seqlab.core.results import write_results
    from seqlab.core.task import NO_READING, Evaluation
    from seqlab.evaluation.evaluate import log_evaluation
    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.recognizer.task import OcrTask

    def tesseract_stage(cer: float) -> None:  # the files `seqlab tesseract` writes, without running Tesseract
        figures = {"cer": cer, "count": 4, "psm": 8, "words_per_s": 100.0}
        evaluation = Evaluation({"test": figures, "test_reserved": figures, "test_lines": {**figures, "psm": 7}},
                                {"by_kind": [{"split": "test", "kind": "number", "count": 4, "cer": cer}]}, {})
        write_results(repo / "metrics/ocr-tesseract", evaluation, "test.cer", ("test", "test_reserved"))

    task = OcrTask("crnn", Charset.from_name("digits_lower"))
    model = repo / "models/ocr-crnn.pt"
    model.parent.mkdir()
    model.write_bytes(b"a model no run of this store trained")

    def evaluate() -> None:  # what the evaluate stage does after scoring
        log_evaluation(task, model, [], {"test": {"cer": 0.5}}, {}, NO_READING)

    assert task.references() == []  # before the stage ran
    evaluate()  # nothing to log, and no training run either
    assert mlflow_runs(repo / "mlflow.db", "seqlab-ocr") == []
    tesseract_stage(0.25)
    evaluate()
    evaluate()  # the second evaluate stage (the other variant) finds it
    (baseline,) = mlflow_runs(repo / "mlflow.db", "seqlab-ocr")
    assert baseline["status"] == "FINISHED" and baseline["tags"]["seqlab.model_id"] == "ocr-tesseract"
    assert baseline["params"] == {"word_psm": "8", "line_psm": "7"}
    assert baseline["metrics"] == {"test.cer": 0.25, "test_reserved.cer": 0.25}
    assert {t["path"] for t in json.loads(baseline["tags"]["mlflow.loggedArtifacts"])} == {
        "evaluation/splits.json", "evaluation/by_kind.json"}
    assert capsys.readouterr().err.count("[ocr-tesseract] logged as MLflow run") == 1

    tesseract_stage(0.125)  # the stage reran with other figures: a new run beside the old one
    evaluate()
    assert [r["metrics"]["test.cer"] for r in mlflow_runs(repo / "mlflow.db", "seqlab-ocr")] == [0.25, 0.125]
