"""The MLflow OCR model decodes as `seqlab predict ocr` does: the evaluate stage logs it with params.yaml's
`ocr.decode` in its config and the language model among its artifacts, registers that model, and it reads with
the beam search anywhere, the project's language model and params gone.

In-process in a scratch repository (its own SQLite store) with a tiny untrained CRNN; the decoding asks for a
long-winded beam, whose reading then differs from greedy decoding's (test_decoding_predict's settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from seqlab.cli import main
from seqlab.core.checkpoint import MODEL_TAG, file_digest, load_model
from seqlab.core.config import load_params
from seqlab.tasks.ocr.data import save_split
from seqlab.tasks.ocr.recognizer.char_lm import build_language_model
from tests.support import REPO, mlflow_runs, tiny_ocr_checkpoint
from tests.unit.tasks.ocr.documents.test_pages import TEXTS, render

HEIGHT = 32
CHARSET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:()%"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch repository: a tiny model, a line image, the first validation image (the MLflow model's input
    example), a language model in models/ and params asking for a beam that reads otherwise than greedy."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # restored (unset) after the test: MLflow sets it
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    tiny_ocr_checkpoint(tmp_path / "models" / "ocr-crnn.pt", CHARSET, HEIGHT)
    line, _ = render([(4, 6, TEXTS[:1])], (300, HEIGHT))
    Image.fromarray(line).save(tmp_path / "line.png")
    save_split(tmp_path / "data" / "ocr" / "val.npz", [np.asarray(line)], [TEXTS[0]], ["font"], HEIGHT)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ocr"]["decode"].update(method="beam", beam_width=4, lm_weight=1.0, length_bonus=5.0, lm_order=3,
                                   lm_gate=None)  # an untrained model reads noise: the gate would keep it greedy
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    build_language_model(["abc abc", "The cat sat."] * 10, load_model(tmp_path / "models" / "ocr-crnn.pt", "ocr")[0]
                         .charset, 3, tmp_path / "models" / "ocr-lm.npz")
    return tmp_path


def _predict(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["predict", "ocr", *flags, "--model", "models/ocr-crnn.pt", "line.png"]) == 0
    return capsys.readouterr().out.rstrip("\n").split("\t", 1)[-1]


def test_evaluate_logs_and_registers_the_ocr_model_with_its_decoding(repo, capsys) -> None:
    from seqlab.evaluation.evaluate import log_evaluation
    from seqlab.tracking.runs import Tracker

    beam, greedy = _predict(capsys), _predict(capsys, "--greedy")
    assert beam != greedy  # else this test could not tell the two apart

    checkpoint = repo / "models" / "ocr-crnn.pt"
    task, _, ckpt = load_model(checkpoint, "ocr")
    tracker = Tracker("seqlab-ocr", run_name="tiny", tags={MODEL_TAG: file_digest(checkpoint)})  # as training tags it
    tracker.finish()
    (trained,) = mlflow_runs(repo / "mlflow.db", "seqlab-ocr")
    log_evaluation(task, checkpoint, [], {"test": {"cer": 0.5}}, ckpt["config"]["meta"],
                   task.reading(load_params(repo / "params.yaml", "ocr")))
    (run,) = mlflow_runs(repo / "mlflow.db", "seqlab-ocr")
    assert (run["status"], run["end"]) == (trained["status"], trained["end"])  # logged by id, not reopened

    # Self-contained: neither the project's language model nor its params are read when the model loads.
    (repo / "models" / "ocr-lm.npz").unlink()
    (repo / "params.yaml").unlink()
    import mlflow

    model = mlflow.pyfunc.load_model("models:/seqlab-ocr-crnn@champion")
    answer = model.predict(pd.DataFrame({"path": [str(repo / "line.png")]}))
    assert answer["error"].tolist() == [None]
    assert answer["text"].tolist() == [beam]
    config = model.model_config["reading"]["decode"]
    assert (config["method"], config["lm_weight"], config["lm_gate"]) == ("beam", 1.0, None)


def test_ocr_training_logs_no_model_before_its_decoding_is_known() -> None:
    from seqlab.core.registry import task_class

    assert task_class("ocr").reads_with_params  # the train stage leaves the OCR model to evaluate
    assert not task_class("kth").reads_with_params and not task_class("binary_add").reads_with_params
