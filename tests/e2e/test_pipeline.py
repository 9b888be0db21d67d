"""End to end: a copy of the repo with tiny params through dvc repro, a no-op repro, and dvc exp run -S."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support import pipeline_repo, run, sandbox_env, stage_outcomes, tiny_params


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("seqlab")
    return pipeline_repo(base / "repo", tiny_params()), sandbox_env(base)


@pytest.fixture(scope="module")
def repo(sandbox) -> Path:
    return sandbox[0]


def ran_stages(output: str) -> set[str]:
    return stage_outcomes(output)["ran"]


def by_length_means(path: Path, column: str) -> dict[str, tuple[float, int]]:
    """by_length.csv's `column`, averaged per split weighted by count: (mean, samples)."""
    totals: dict[str, list[float]] = {}
    for row in csv.DictReader(path.open()):
        total = totals.setdefault(row["split"], [0.0, 0])
        total[0] += float(row[column]) * int(row["count"])
        total[1] += int(row["count"])
    return {split: (s / n, int(n)) for split, (s, n) in totals.items()}


def splits(repo: Path, model: str) -> dict[str, dict]:
    """metrics/<model>/splits.json (every figure of each test split), by split."""
    return {r["split"]: r for r in json.loads((repo / f"metrics/{model}/splits.json").read_text())}


@pytest.fixture(scope="module")
def reproduced(sandbox) -> subprocess.CompletedProcess:
    root, env = sandbox
    return run(["dvc", "repro"], root, env)


def test_repro_writes_sane_metrics(repo, reproduced):
    stages = ran_stages(reproduced.stdout)
    assert {"validate", "generate@kth", "train@kth", "evaluate@kth", "train@binary_add"} <= stages
    # the splits' rates are the per-length table's, weighted by count (the table is what the plot shows)
    for task, headline, n in (("kth", "accuracy", 100), ("binary_add", "exact_match", 60)):
        metrics = splits(repo, task)
        means = by_length_means(repo / f"metrics/{task}/by_length.csv", headline)
        assert means["test"][1] == metrics["test"]["n"] == n
        for split, (mean, count) in means.items():
            assert metrics[split][headline] == pytest.approx(mean, abs=1e-6) and count == metrics[split]["n"]
        # eval.json: the headline alone, on both splits
        assert json.loads((repo / f"metrics/{task}/eval.json").read_text()) == {
            split: {headline: metrics[split][headline]} for split in ("test", "generalization")}
    kth = splits(repo, "kth")
    assert kth["generalization"]["min_len"] > kth["test"]["max_len"]
    add = splits(repo, "binary_add")
    assert add["test"]["exact_match"] <= add["test"]["bit_accuracy"]  # an exact sum has every bit right
    assert add["generalization"]["max_bits"] <= 32 < add["generalization"]["max_bits"] * 2
    history = (repo / "metrics/kth/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss") and len(history) == 3
    assert (repo / "metrics/kth/by_length.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_show_fits_a_terminal(sandbox, reproduced):
    """`dvc metrics show` prints a column per key of every metrics file: a few headline figures, not breakdowns."""
    root, env = sandbox
    shown = run(["dvc", "metrics", "show"], root, {**env, "COLUMNS": "100000"}).stdout.splitlines()
    assert len(shown) == 11 and max(map(len, shown)) <= 200, "\n".join(shown)


def test_repro_runs_ocr_end_to_end(repo, reproduced):
    stages = ran_stages(reproduced.stdout)
    assert {"ocr-generate", "ocr-train@bilstm", "ocr-train@crnn", "ocr-evaluate@bilstm", "ocr-evaluate@crnn",
            "ocr-tesseract", "ocr-rapidocr", "ocr-lm"} <= stages
    for model in ("ocr-bilstm", "ocr-crnn", "ocr-tesseract", "ocr-rapidocr"):
        m = splits(repo, model)
        assert json.loads((repo / f"metrics/{model}/eval.json").read_text()) == {
            split: {"cer": m[split]["cer"]} for split in ("test", "test_reserved")}
        table = repo / f"metrics/{model}/by_length.csv"  # our models' evaluate stage writes it, Tesseract's not
        words = by_length_means(table, "word_accuracy") if model not in ("ocr-tesseract", "ocr-rapidocr") else None
        for split, n in (("test", 16), ("test_heldout_fonts", 16)):
            assert m[split]["count"] == n, m
            assert m[split]["word_accuracy"] < 1 or m[split]["cer"] == 0  # every word right: no character wrong
            if words:
                assert words[split][1] == n and m[split]["word_accuracy"] == pytest.approx(words[split][0], abs=1e-6)
        assert (repo / f"metrics/{model}/predictions.png").read_bytes()[:4] == b"\x89PNG"
    history = (repo / "metrics/ocr-crnn/history.csv").read_text().splitlines()
    assert "val_cer" in history[0] and len(history) == 2  # one epoch in tiny params
    assert (repo / "data/ocr/contact_sheet.png").is_file()


def test_repro_trains_and_scores_lines(repo, reproduced):
    from seqlab.core.storage import load_arrays

    texts = load_arrays(repo / "data/ocr/train.npz")["texts"].tolist()
    assert any(" " in t for t in texts) and any(" " not in t for t in texts)  # lines.share 0.5: both kinds
    for model in ("ocr-bilstm", "ocr-crnn", "ocr-tesseract"):
        m = splits(repo, model)
        for split, n in (("test_lines", 8), ("test_reserved_lines", 8), ("test_reserved_lines_degraded", 8),
                         ("test_reserved_scans", 8)):
            assert m[split]["count"] == n and {"cer", "wer"} <= set(m[split]), m
        if model == "ocr-tesseract":  # words in single-word mode, lines in single-line mode
            assert (m["test"]["psm"], m["test_reserved"]["psm"], m["test_lines"]["psm"]) == (8, 8, 7)
        rows = list(csv.DictReader((repo / f"metrics/{model}/by_line_words.csv").open()))
        assert {r["split"] for r in rows} == {"test_lines", "test_reserved_lines", "test_reserved_lines_degraded",
                                              "test_reserved_scans"}
        assert all(int(r["words"]) >= 1 for r in rows)  # prose windows of 10-70 characters: one word or many
        assert sum(int(r["count"]) for r in rows) == 32
        for grid in ("predictions_reserved_lines.png", "predictions_reserved_scans.png"):
            assert (repo / f"metrics/{model}/{grid}").read_bytes()[:4] == b"\x89PNG"


def test_predict_reads_a_line_image(repo, sandbox, reproduced):
    from PIL import Image

    from seqlab.core.storage import load_arrays

    split = load_arrays(repo / "data/ocr/test_lines.npz")
    width = int(split["widths"][0])
    line = repo / "line.png"
    Image.fromarray(split["pixels"][: 32 * width].reshape(32, width)).save(line)
    out = subprocess.run(["seqlab", "predict", "ocr", str(line)], cwd=repo, env=sandbox[1], capture_output=True,
                         text=True, timeout=120)
    # Whatever a one-epoch model reads comes back on one line in label form: single spaces, none at the ends.
    assert out.returncode == 0 and out.stdout.count("\n") == 1, out
    name, text = out.stdout.rstrip("\n").split("\t")
    assert name == str(line) and text == " ".join(text.split())


ALWAYS_CHANGED: set[str] = set()  # every stage depends on what it reads: none runs on a second repro


def test_second_repro_does_nothing(repo, sandbox, reproduced):
    out = run(["dvc", "repro"], repo, sandbox[1])
    assert ran_stages(out.stdout) <= ALWAYS_CHANGED  # its manifest is unchanged, so nothing after it reruns
    status = run(["dvc", "status"], repo, sandbox[1])
    changed = {line.strip().rstrip(":") for line in status.stdout.splitlines()
               if line.strip() and line[0] not in " \t" and line.strip() != "Data and pipelines are up to date."}
    assert changed <= ALWAYS_CHANGED, status.stdout


def test_predict_with_the_trained_models(repo, sandbox, reproduced):
    env = sandbox[1]
    out = subprocess.run(["seqlab", "predict", "kth"], cwd=repo, env=env, input="9 7 0 5 6\n1 2\n", capture_output=True,
                         text=True, timeout=120)
    # Answers of the 2-epoch models are not checked here; tests/unit/tasks/sequence/test_learning.py checks them exactly.
    assert out.returncode == 1  # line 2 is too short for k=3
    assert re.fullmatch(r"[0-9]\n\n", out.stdout), out.stdout  # one digit for line 1, an empty line for line 2
    assert "line 2" in out.stderr
    out = subprocess.run(["seqlab", "predict", "binary_add"], cwd=repo, env=env, input="1011 110\n", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and re.fullmatch(r"[01]{1,5}\n", out.stdout), out.stdout  # one step per sum bit
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
