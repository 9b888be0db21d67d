"""MLflow models, not just files: a training run logs its checkpoint as a pyfunc model that answers what
`seqlab predict` answers, evaluate registers it (`seqlab-<model id>`) and moves the alias `champion` only
when the headline test metric improves, and experiments are one per task, marked as model training, with
eval.json's metric names.

kth runs through the CLI in a tmp repo on tiny params (generate, train, evaluate); OCR uses a tiny untrained
CRNN checkpoint logged into a run by hand. Pyfunc models are loaded the way a user would: a fresh Python
process that imports mlflow and pandas, not seqlab.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from tests.support import (
    REPO,
    SANDBOX,
    documented_serve_example,
    mlflow_runs,
    run,
    sandbox_env,
    served,
    tiny_params,
)

sys.path.insert(0, str(REPO / "tools"))  # the process-group helpers of the MLflow server tool
from mlflow_server import free_port  # noqa: E402

KTH_LINES = ["9 7 0 5 6", "1 2", "3 1 4 1 5 9 2 6", "x1", "0 0 7"]  # lines 2 and 4 are refused

# What a user runs: plain mlflow + pandas, output as JSON records.
PYFUNC_SCRIPT = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
frame = pd.DataFrame({column: values if column != "image" else [bytes.fromhex(v) for v in values]
                      for column, values in json.loads(sys.argv[3]).items()})
print(json.dumps(model.predict(frame).to_dict("records")))
"""


def pyfunc_predict(root: Path, uri: str, columns: dict[str, list[str]]) -> list[dict]:
    proc = run([sys.executable, "-c", PYFUNC_SCRIPT, f"sqlite:///{root / 'mlflow.db'}", uri, json.dumps(columns)],
               root, env=sandbox_env(root / SANDBOX), timeout=900)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def champion_version(db: Path, name: str) -> int | None:
    rows = query(db, "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = 'champion'", name)
    return rows[0][0] if rows else None


def version_tags(db: Path, name: str, version: int) -> dict[str, str]:
    return dict(query(db, "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", name, version))


# --- kth through the CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kth_repo(tmp_path_factory) -> Path:
    """A tmp repo with tiny params where kth was generated, trained (logging its model) and evaluated."""
    root = tmp_path_factory.mktemp("mlflow-models")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = sandbox_env(root / SANDBOX, DVC_ROOT=str(root))
    for command in ("generate", "train", "evaluate"):
        run(["seqlab", command, "kth"], root, env=env, timeout=900)
    return root


def test_runs_are_marked_as_model_training_with_plain_metric_names(kth_repo):
    db = kth_repo / "mlflow.db"
    kind = query(db, "SELECT t.value FROM experiment_tags t JOIN experiments e USING (experiment_id) "
                     "WHERE e.name = 'seqlab-kth' AND t.key = 'mlflow.experimentKind'")
    assert kind == [("custom_model_development",)]
    (kth_run,) = mlflow_runs(db, "seqlab-kth")
    assert kth_run["tags"]["seqlab.model_id"] == "kth"
    metrics = kth_run["metrics"]
    test = json.loads((kth_repo / "metrics/kth/eval.json").read_text())
    assert metrics["test.accuracy"] == pytest.approx(test["test"]["accuracy"])
    assert metrics["generalization.accuracy"] == pytest.approx(test["generalization"]["accuracy"])
    assert not [k for k in metrics if k.startswith("test.test") or k.startswith("test.generalization")], metrics


def test_pyfunc_from_a_fresh_process_answers_like_seqlab_predict(kth_repo):
    env = sandbox_env(kth_repo / SANDBOX, DVC_ROOT=str(kth_repo))
    cli = run(["seqlab", "predict", "kth"], kth_repo, env=env, check=False, input="\n".join(KTH_LINES) + "\n")
    assert cli.returncode == 1  # two lines refused
    (kth_run,) = mlflow_runs(kth_repo / "mlflow.db", "seqlab-kth")
    rows = pyfunc_predict(kth_repo, f"runs:/{kth_run['id']}/model", {"input": KTH_LINES})

    assert len(rows) == len(KTH_LINES)
    assert [r["text"] if r["error"] is None else "" for r in rows] == cli.stdout.splitlines()  # a line per input
    refused = [f"line {i}: {line!r}: {r['error']}" for i, (line, r) in enumerate(zip(KTH_LINES, rows), 1)
               if r["error"] is not None]
    assert refused == [e for e in cli.stderr.splitlines() if e.startswith("line ")]
    assert [i for i, r in enumerate(rows, 1) if r["text"] is None] == [2, 4]


def test_predict_takes_the_registered_champion(kth_repo):
    db = kth_repo / "mlflow.db"
    assert champion_version(db, "seqlab-kth") == 1
    tags = version_tags(db, "seqlab-kth", 1)
    test = json.loads((kth_repo / "metrics/kth/eval.json").read_text())["test"]
    assert tags["seqlab.test_metric"] == "test.accuracy"
    assert float(tags["seqlab.test_value"]) == pytest.approx(test["accuracy"])

    env = sandbox_env(kth_repo / SANDBOX, DVC_ROOT=str(kth_repo))
    lines = "\n".join(KTH_LINES) + "\n"
    from_file = run(["seqlab", "predict", "kth"], kth_repo, env=env, check=False, input=lines)
    from_registry = run(["seqlab", "predict", "kth", "--model", "models:/seqlab-kth@champion"], kth_repo, env=env,
                        check=False, input=lines)
    assert (from_registry.returncode, from_registry.stdout) == (from_file.returncode, from_file.stdout)
    assert from_registry.stdout.strip()
    rows = pyfunc_predict(kth_repo, "models:/seqlab-kth@champion", {"input": KTH_LINES})
    assert [r["text"] or "" for r in rows] == from_file.stdout.splitlines()  # predict: an empty line per refusal

    unknown = run(["seqlab", "predict", "kth", "--model", "models:/seqlab-nothing@champion"], kth_repo, env=env,
                  check=False, input=lines)
    assert unknown.returncode == 1 and unknown.stderr.startswith("seqlab: error: models:/seqlab-nothing@champion")

    # another task's model: the error names the registry URI, not the temporary download
    wrong = run(["seqlab", "predict", "binary_add", "--model", "models:/seqlab-kth@champion"], kth_repo, env=env,
                check=False, input="1 0\n")
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert wrong.stderr == "seqlab: error: models:/seqlab-kth@champion: checkpoint is for task 'kth', not 'binary_add'\n"


# --- mlflow models serve -----------------------------------------------------------------------------

def test_served_model_answers_the_documented_curl_and_refuses_unknown_columns(kth_repo):
    serve, (good, bad) = documented_serve_example()
    port = free_port()
    env = sandbox_env(kth_repo / SANDBOX, DVC_ROOT=str(kth_repo))
    with served(serve.replace("$PWD", str(kth_repo)).replace("5001", str(port)), kth_repo, env, port):
        answer = subprocess.run(["bash", "-c", good.replace("5001", str(port))], capture_output=True, text=True,
                                timeout=120, check=True).stdout
        refused = subprocess.run(["bash", "-c", bad.replace("5001", str(port))], capture_output=True, text=True,
                                 timeout=120, check=True).stdout
    cli = run(["seqlab", "predict", "kth"], kth_repo, env=env, check=False, input="9 7 0 5 6\n1 2\n")
    rows = json.loads(answer)["predictions"]
    assert [r["text"] or "" for r in rows] == cli.stdout.splitlines()
    print(answer, refused)  # what docs/models-and-serving.md shows as the answers
    assert [r["error"] is None for r in rows] == [True, False]
    body, status = refused.rsplit(" HTTP ", 1)
    assert status.strip() == "400" and json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE", refused
    assert "missing inputs ['input']" in json.loads(body)["message"]


def test_champion_moves_only_when_the_metric_improves(kth_repo, monkeypatch):
    db = kth_repo / "mlflow.db"
    # The same model evaluated again: a new version with an equal metric, so the alias stays.
    run(["seqlab", "evaluate", "kth"], kth_repo, env=sandbox_env(kth_repo / SANDBOX, DVC_ROOT=str(kth_repo)), timeout=900)
    assert champion_version(db, "seqlab-kth") == 1
    assert version_tags(db, "seqlab-kth", 2)["seqlab.test_metric"] == "test.accuracy"

    from seqlab.core.registry import task_class
    from seqlab.evaluation.model_registry import register

    kth = task_class("kth")()
    monkeypatch.setenv("DVC_ROOT", str(kth_repo))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")  # restored after the test (mlflow exports it)
    (kth_run,) = mlflow_runs(db, "seqlab-kth")
    best = float(version_tags(db, "seqlab-kth", 1)["seqlab.test_value"])
    worse = register(kth_run["id"], kth, best - 0.25)
    assert (worse.version, worse.promoted, worse.champion_before) == ("3", False, pytest.approx(best))
    assert champion_version(db, "seqlab-kth") == 1
    better = register(kth_run["id"], kth, best + 0.25)
    assert (better.version, better.promoted) == ("4", True)
    assert champion_version(db, "seqlab-kth") == 4


def test_lower_is_better_for_ocr_and_ties_keep_the_champion():
    from seqlab.core.registry import task_class
    from seqlab.evaluation.model_registry import beats

    ocr = task_class("ocr")
    assert (ocr.headline_metric, ocr.headline_mode) == ("test.cer", "min")
    assert beats(0.02, 0.03, "min") and not beats(0.04, 0.03, "min") and not beats(0.03, 0.03, "min")
    assert beats(0.9, 0.8, "max") and not beats(0.8, 0.8, "max") and beats(0.0, None, "max")


# --- OCR: image paths and image bytes --------------------------------------------------------------

OCR_CHARSET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _word_png(text: str, width: int = 96) -> bytes:
    im = Image.new("L", (width, 32), 255)
    ImageDraw.Draw(im).text((4, 8), text, fill=0)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ocr_model(tmp_path_factory) -> tuple[Path, Path, str, list[Path]]:
    """(root, checkpoint, run id, image files): a tiny seeded CRNN logged as the model of a run in seqlab-ocr."""
    root = tmp_path_factory.mktemp("mlflow-ocr")
    script = f"""
import os, sys
import numpy as np, torch
from PIL import Image
from seqlab.core.checkpoint import save_checkpoint
from seqlab.core.checkpoint import load_model
from seqlab.tracking.mlflow_model import log_model
from seqlab.tasks.ocr.data import save_split
from seqlab.tasks.ocr.config import CRNNConfig
from seqlab.tasks.ocr.recognizer.models import CRNN, model_config
from seqlab.core.results import write_results
from seqlab.core.task import Evaluation
from seqlab.tasks.ocr.recognizer.tesseract import reference
from seqlab.tracking.runs import Tracker, log_reference_run

torch.manual_seed(0)
args = {{"channels": [8, 16], "hidden_size": 16, "num_layers": 1, "downsample": 4, "pool": "stride",
        "frames_per_step": 1, "dropout": 0.0}}
meta = {{"charset": "{OCR_CHARSET}", "height": 32}}
model = CRNN(model_config(CRNNConfig, **args), len(meta["charset"]) + 1, 32)
config = {{"task": "ocr", "variant": "crnn", "seed": 0, "model": args, "train": {{}}, "meta": meta}}
save_checkpoint("ocr-crnn.pt", {{"task": "ocr", "variant": "crnn", "config": config,
                                "model_state": model.state_dict(), "meta": {{}}}})
os.makedirs("data/ocr")  # the input example is the first validation image
image = np.asarray(Image.open("word-0.png").convert("L"))
save_split("data/ocr/val.npz", [image], ["hello"], ["font"], 32)
task, _, _ = load_model("ocr-crnn.pt", "ocr")
tracker = Tracker("seqlab-ocr", run_name="tiny-crnn")
log_model(tracker.run_id, task, meta, __import__("pathlib").Path("ocr-crnn.pt"))
tracker.finish()
# the files of the tesseract stage, then its run as the stage (or an OCR evaluate stage) logs it
write_results(__import__("pathlib").Path("metrics/ocr-tesseract"),
              Evaluation({{"test": {{"cer": 0.25, "count": 1, "psm": 8}}}}, {{}}, {{}}), "test.cer", ("test",))
log_reference_run("ocr", reference())
print(tracker.run_id)
"""
    images = []
    for i, text in enumerate(("hello", "world", "abc123")):
        images.append(root / f"word-{i}.png")
        images[-1].write_bytes(_word_png(text, 60 + 20 * i))
    images.append(root / "not-an-image.png")
    images[-1].write_text("this is not an image\n")
    proc = run([sys.executable, "-c", script], root, env=sandbox_env(root / SANDBOX, DVC_ROOT=str(root)), timeout=900)
    return root, root / "ocr-crnn.pt", proc.stdout.strip().splitlines()[-1], images


def test_ocr_pyfunc_reads_paths_and_bytes_like_seqlab_predict(ocr_model):
    root, checkpoint, run_id, images = ocr_model
    cli = run(["seqlab", "predict", "ocr", "--model", str(checkpoint), *map(str, images)], root, check=False,
              env=sandbox_env(root / SANDBOX, DVC_ROOT=str(root)))
    assert cli.returncode == 1  # the text file is refused
    answered = dict(line.split("\t", 1) for line in cli.stdout.splitlines())
    refused = cli.stderr.strip().splitlines()

    uri = f"runs:/{run_id}/model"
    by_path = pyfunc_predict(root, uri, {"path": [str(p) for p in images]})
    assert {str(p): r["text"] for p, r in zip(images, by_path) if r["error"] is None} == answered
    assert [f"{p}: {r['error']}" for p, r in zip(images, by_path) if r["error"] is not None] == refused

    by_bytes = pyfunc_predict(root, uri, {"image": [p.read_bytes().hex() for p in images]})
    assert [r["text"] for r in by_bytes] == [r["text"] for r in by_path]  # same pixels, same reading
    assert by_bytes[-1]["error"] == by_path[-1]["error"] and by_bytes[-1]["text"] is None


def test_ocr_models_and_the_tesseract_baseline_share_one_experiment(ocr_model):
    root, _, run_id, _ = ocr_model
    runs = {r["name"]: r for r in mlflow_runs(root / "mlflow.db", "seqlab-ocr")}
    assert set(runs) == {"tiny-crnn", "ocr-tesseract-workspace"}
    tesseract = runs["ocr-tesseract-workspace"]
    assert tesseract["tags"]["seqlab.model_id"] == "ocr-tesseract" and tesseract["metrics"]["test.cer"] == 0.25
    # the trained model has its MLflow model, the baseline has none
    logged = dict(query(root / "mlflow.db", "SELECT source_run_id, COUNT(*) FROM logged_models GROUP BY source_run_id"))
    assert logged == {run_id: 1}


def test_served_ocr_model_refuses_a_request_without_image_or_path(ocr_model):
    root, _, run_id, images = ocr_model
    port = free_port()
    env = sandbox_env(root / SANDBOX, DVC_ROOT=str(root))
    command = (f"MLFLOW_TRACKING_URI=sqlite:///{root / 'mlflow.db'} mlflow models serve -m runs:/{run_id}/model "
               f"--env-manager local -h 127.0.0.1 -p {port}")

    def post(columns: list[str], data: list[list[str]]) -> tuple[int, dict]:
        body = json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    with served(command, root, env, port):
        unknown = post(["file"], [[str(images[0])]])
        known = post(["path"], [[str(images[0])]])
    assert unknown[0] == 400 and unknown[1]["error_code"] == "INVALID_PARAMETER_VALUE", unknown
    assert "needs a column 'image' or 'path'" in unknown[1]["message"], unknown
    assert known[0] == 200 and len(known[1]["predictions"]) == 1 and known[1]["predictions"][0]["error"] is None
