"""Concurrency: two queued experiments run in parallel (`dvc queue start -j 2`) on a fresh MLflow store.

Both MLflow runs must land complete (FINISHED, every epoch's metrics, the evaluation attached, the model
artifact) and DVC must record both experiments. The store does not exist when the workers start, so both
stages open it at once: the case that lost a run ("duplicate column name" during the schema migration)
before opening the store was serialized.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.support import clone_pipeline, leftover_temps, read_params, run

EXPERIMENTS = {"lr-a": 0.02, "lr-b": 0.03}


@pytest.fixture(scope="module")
def finished_queue(pipeline_template, tmp_path_factory):
    root = clone_pipeline(pipeline_template, tmp_path_factory.mktemp("queue") / "repo")
    assert not (root / "mlflow.db").exists()
    for name, lr in EXPERIMENTS.items():
        run(["dvc", "exp", "run", "--queue", "-S", f"binary_add.train.lr={lr}", "-n", name, "evaluate@binary_add"],
            root)
    run(["dvc", "queue", "start", "-j", "2"], root)
    try:
        deadline = time.monotonic() + 600
        while True:
            status = run(["dvc", "queue", "status"], root).stdout
            if "Running" not in status and "Queued" not in status:
                break
            assert time.monotonic() < deadline, status
            time.sleep(3)
    finally:
        run(["dvc", "queue", "stop"], root, check=False)  # idle workers would outlive the test
    yield root, status
    _wait_for_workers_to_exit(root)


def _wait_for_workers_to_exit(root, timeout=60):
    deadline = time.monotonic() + timeout
    while "0 active, 0 idle" not in run(["dvc", "queue", "status"], root, check=False).stdout:
        if time.monotonic() > deadline:
            break
        time.sleep(1)


def _query(root, sql, *args):
    db = sqlite3.connect(root / "mlflow.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_both_experiments_succeed_and_dvc_records_them(finished_queue):
    root, status = finished_queue
    for name in EXPERIMENTS:
        line = next(line for line in status.splitlines() if f" {name} " in f" {line} ")
        assert "Success" in line, status
    listed = run(["dvc", "exp", "ls"], root).stdout
    assert all(name in listed for name in EXPERIMENTS), listed
    shown = run(["dvc", "exp", "show", "--json"], root).stdout
    for name, lr in EXPERIMENTS.items():
        assert f'"name": "{name}"' in shown and f'"lr": {lr}' in shown


def test_both_mlflow_runs_are_complete(finished_queue):
    root, _ = finished_queue
    epochs = read_params(root)["binary_add"]["train"]["epochs"]
    runs = _query(root, "SELECT r.run_uuid, r.status, t.value, p.value FROM runs r "
                        "JOIN experiments e USING (experiment_id) "
                        "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'dvc.exp_name' "
                        "JOIN params p ON p.run_uuid = r.run_uuid AND p.key = 'train.lr' "
                        "WHERE e.name = 'seqlab-binary_add'")
    assert sorted((name, float(lr)) for _, _, name, lr in runs) == sorted(EXPERIMENTS.items())
    for run_id, state, name, _ in runs:
        assert state == "FINISHED", name
        for key in ("train_loss", "val_loss", "val_exact_match"):
            steps = [s for (s,) in _query(root, "SELECT step FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step",
                                          run_id, key)]
            assert steps == list(range(1, epochs + 1)), (name, key, steps)
        keys = {k for (k,) in _query(root, "SELECT key FROM latest_metrics WHERE run_uuid = ?", run_id)}
        assert {"final_val_loss", "test.exact_match", "generalization.exact_match"} <= keys, (name, keys)
        (model_id,) = [m for (m,) in _query(root, "SELECT model_id FROM logged_models WHERE source_run_id = ?", run_id)]
        artifacts = list((root / "mlartifacts").rglob(f"{model_id}/artifacts/artifacts/binary_add.pt"))
        assert artifacts, f"MLflow model (checkpoint) of {name} missing"


def test_no_debris_left(finished_queue):
    root, _ = finished_queue
    assert leftover_temps(root) == []
    assert not list((root / ".seqlab").glob("resume/*.pt"))
