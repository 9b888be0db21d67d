"""End to end: a copy of the repo with tiny params through dvc repro, a no-op repro, and dvc exp run -S."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import pipeline_repo, run_cmd, sandbox_env, stage_outcomes, tiny_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("seqlab")
    return pipeline_repo(base / "repo", tiny_params()), sandbox_env(base)


@pytest.fixture(scope="module")
def repo(sandbox) -> Path:
    return sandbox[0]


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run_cmd(cmd, cwd, env, check=check)


def ran_stages(output: str) -> set[str]:
    return stage_outcomes(output)["ran"]


@pytest.fixture(scope="module")
def reproduced(sandbox) -> subprocess.CompletedProcess:
    root, env = sandbox
    return run(["dvc", "repro"], root, env)


def test_repro_writes_sane_metrics(repo, reproduced):
    stages = ran_stages(reproduced.stdout)
    assert {"validate", "generate@kth", "train@kth", "evaluate@kth", "train@binary_add"} <= stages
    kth = json.loads((repo / "metrics/kth/eval.json").read_text())
    assert 0.0 <= kth["test"]["accuracy"] <= 1.0 and kth["test"]["n"] == 100
    assert kth["generalization"]["min_len"] > kth["test"]["max_len"]
    add = json.loads((repo / "metrics/binary_add/eval.json").read_text())
    assert 0.0 <= add["test"]["exact_match"] <= add["test"]["bit_accuracy"] <= 1.0
    assert add["generalization"]["max_bits"] <= 32 < add["generalization"]["max_bits"] * 2
    history = (repo / "metrics/kth/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss") and len(history) == 3
    assert (repo / "metrics/kth/by_length.png").read_bytes()[:4] == b"\x89PNG"


def test_repro_runs_ocr_end_to_end(repo, reproduced):
    stages = ran_stages(reproduced.stdout)
    assert {"ocr-generate", "ocr-train@bilstm", "ocr-train@crnn", "ocr-evaluate@bilstm", "ocr-evaluate@crnn",
            "ocr-tesseract"} <= stages
    for model in ("ocr-bilstm", "ocr-crnn", "ocr-tesseract"):
        m = json.loads((repo / f"metrics/{model}/eval.json").read_text())
        for split, n in (("test", 16), ("test_heldout_fonts", 16)):
            assert m[split]["count"] == n and 0.0 <= m[split]["word_accuracy"] <= 1.0 and m[split]["cer"] >= 0.0, m
            assert m[split]["words_per_s"] > 0
        assert (repo / f"metrics/{model}/predictions.png").read_bytes()[:4] == b"\x89PNG"
    history = (repo / "metrics/ocr-crnn/history.csv").read_text().splitlines()
    assert "val_cer" in history[0] and len(history) == 2  # one epoch in tiny params
    assert (repo / "data/ocr/contact_sheet.png").is_file()


ALWAYS_CHANGED = {"ocr-fonts"}  # reads the installed fonts, which DVC cannot hash: runs every time (seconds)


def test_second_repro_does_nothing(repo, sandbox, reproduced):
    out = run(["dvc", "repro"], repo, sandbox[1])
    assert ran_stages(out.stdout) <= ALWAYS_CHANGED  # its manifest is unchanged, so nothing after it reruns
    status = run(["dvc", "status"], repo, sandbox[1])
    changed = {line.strip().rstrip(":") for line in status.stdout.splitlines() if line.strip() and line[0] not in " \t"}
    assert changed <= ALWAYS_CHANGED, status.stdout


def test_predict_with_the_trained_models(repo, sandbox, reproduced):
    env = sandbox[1]
    out = subprocess.run(["seqlab", "predict", "kth"], cwd=repo, env=env, input="9 7 0 5 6\n1 2\n", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1  # line 2 is too short for k=3
    assert len(out.stdout.split()) == 1 and out.stdout.strip() in "0123456789"
    assert "line 2" in out.stderr
    out = subprocess.run(["seqlab", "predict", "binary_add"], cwd=repo, env=env, input="1011 110\n", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and set(out.stdout.strip()) <= {"0", "1"}
    image = repo / "data/ocr/contact_sheet.png"  # any image reads; a missing one is reported, not fatal
    out = subprocess.run(["seqlab", "predict", "ocr", str(image), "missing.png"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout.startswith(f"{image}\t") and "missing.png" in out.stderr


def test_exp_run_reruns_only_the_changed_task_and_tracks_it(repo, sandbox, reproduced):
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "pipeline outputs locked"], repo)
    out = run(["dvc", "exp", "run", "-S", "binary_add.train.lr=0.02", "-n", "lr-002"], repo, sandbox[1])
    stages = ran_stages(out.stdout)
    assert {"train@binary_add", "evaluate@binary_add"} <= stages
    assert not any(("kth" in s or "ocr" in s) and s not in ALWAYS_CHANGED for s in stages), stages

    db = sqlite3.connect(repo / "mlflow.db")  # the store at the repo root, not a temp copy
    rows = db.execute(
        "SELECT r.run_uuid, p.value, t.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
        "JOIN params p ON p.run_uuid = r.run_uuid AND p.key = 'train.lr' "
        "LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'dvc.exp_name' "
        "WHERE e.name = 'seqlab-binary_add'").fetchall()
    assert {float(v) for _, v, _ in rows} == {0.01, 0.02}
    assert any(float(v) == 0.02 and tag == "lr-002" for _, v, tag in rows)
