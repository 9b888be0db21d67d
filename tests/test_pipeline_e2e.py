"""End to end: a copy of the repo with tiny params through dvc repro, a no-op repro, and dvc exp run -S."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, tiny_params

pytestmark = pytest.mark.e2e


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def pipeline_env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_URI", "DVC_"))}
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
               DVC_SITE_CACHE_DIR=str(root / ".dvc-site-cache"), HOME=str(root / ".home"))
    (root / ".home").mkdir(exist_ok=True)
    return env


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("seqlab"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    run(["git", "commit", "-qam", "tiny params"], root)
    return root


@pytest.fixture(scope="module")
def reproduced(repo: Path) -> subprocess.CompletedProcess:
    return run(["dvc", "repro"], repo, pipeline_env(repo))


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


def test_second_repro_does_nothing(repo, reproduced):
    out = run(["dvc", "repro"], repo, pipeline_env(repo))
    assert ran_stages(out.stdout) == set()
    status = run(["dvc", "status"], repo, pipeline_env(repo))
    assert "up to date" in status.stdout


def test_predict_with_the_trained_models(repo, reproduced):
    env = pipeline_env(repo)
    out = subprocess.run(["seqlab", "predict", "kth"], cwd=repo, env=env, input="9 7 0 5 6\n1 2\n", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1  # line 2 is too short for k=3
    assert len(out.stdout.split()) == 1 and out.stdout.strip() in "0123456789"
    assert "line 2" in out.stderr
    out = subprocess.run(["seqlab", "predict", "binary_add"], cwd=repo, env=env, input="1011 110\n", capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and set(out.stdout.strip()) <= {"0", "1"}


def test_exp_run_reruns_only_the_changed_task_and_tracks_it(repo, reproduced):
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "pipeline outputs locked"], repo)
    out = run(["dvc", "exp", "run", "-S", "binary_add.train.lr=0.02", "-n", "lr-002"], repo, pipeline_env(repo))
    stages = ran_stages(out.stdout)
    assert {"train@binary_add", "evaluate@binary_add"} <= stages
    assert not any("kth" in s or "ocr" in s for s in stages), stages

    db = sqlite3.connect(repo / "mlflow.db")  # the store at the repo root, not a temp copy
    rows = db.execute(
        "SELECT r.run_uuid, p.value, t.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
        "JOIN params p ON p.run_uuid = r.run_uuid AND p.key = 'train.lr' "
        "LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'dvc.exp_name' "
        "WHERE e.name = 'seqlab-binary_add'").fetchall()
    assert {float(v) for _, v, _ in rows} == {0.01, 0.02}
    assert any(float(v) == 0.02 and tag == "lr-002" for _, v, tag in rows)
