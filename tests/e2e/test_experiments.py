"""DVC experiments into the one MLflow store: workspace `-S`, `--temp`, `--queue` + `dvc queue start -j 2`,
`dvc exp show` agreeing with MLflow, and run-cache restores that make no new MLflow run.

The experiments run once per session (fixtures in conftest.py) on tiny params and only the
binary_add stages; test_mlflow_rest.py reads the same store through the MLflow server.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from tests.support import EXPERIMENT_LRS, REPO, mlflow_runs, run, runs_by_exp_name, stage_outcomes


def _only_run(repo, name: str) -> dict:
    runs = runs_by_exp_name(repo.db).get(name, [])
    assert len(runs) == 1, f"expected one MLflow run tagged dvc.exp_name={name}, found {len(runs)}"
    run = runs[0]
    assert run["status"] == "FINISHED"
    assert run["name"] == name  # the run name is the DVC experiment name too
    assert float(run["params"]["train.lr"]) == EXPERIMENT_LRS[name]
    assert run["tags"]["dvc.baseline_rev"] == repo.baseline_rev
    assert run["tags"]["dvc.stage"] == "train@binary_add"
    # final metrics from train, test metrics attached by evaluate
    assert {"final_val_loss", "final_val_exact_match", "test.exact_match"} <= set(run["metrics"])
    return run


def test_workspace_exp_run_reruns_binary_add_only_and_logs_one_run(exp_repo, workspace_exp):
    stages = stage_outcomes(workspace_exp.stdout)
    assert {"train@binary_add", "evaluate@binary_add"} <= stages["ran"]
    assert not [s for s in stages["ran"] | stages["cached"] if "kth" in s]
    _only_run(exp_repo, "ws-lr")
    workspace = yaml.safe_load((exp_repo.root / "params.yaml").read_text())
    assert workspace["binary_add"]["train"]["lr"] == EXPERIMENT_LRS["ws-lr"]  # applied to the workspace


def test_temp_exp_run_lands_in_the_root_store(exp_repo, workspace_exp, temp_exp):
    stages = stage_outcomes(temp_exp.stdout)
    assert "train@binary_add" in stages["ran"]
    _only_run(exp_repo, "tmp-lr")
    # It ran in .dvc/tmp/exps/tmpXXXX (gone now) yet wrote to <root>/mlflow.db: DVC_ROOT pointed home.
    assert not list((exp_repo.root / ".dvc" / "tmp" / "exps").glob("tmp*"))
    assert sorted(exp_repo.root.rglob("mlflow.db")) == [exp_repo.db]
    workspace = yaml.safe_load((exp_repo.root / "params.yaml").read_text())
    assert workspace["binary_add"]["train"]["lr"] == EXPERIMENT_LRS["ws-lr"]  # --temp leaves it alone


def test_queue_runs_two_experiments_in_parallel(exp_repo, queued_exps):
    for name in ("q-a", "q-b"):
        assert re.search(rf"\b{name}\b.*\bSuccess\b", queued_exps), queued_exps
    a, b = _only_run(exp_repo, "q-a"), _only_run(exp_repo, "q-b")
    # `-j 2`: two workers, so the two trainings overlapped in time
    assert a["start"] < b["end"] and b["start"] < a["end"], (a["start"], a["end"], b["start"], b["end"])
    assert a["metrics"]["final_val_loss"] != b["metrics"]["final_val_loss"]


def test_exp_show_and_mlflow_tell_the_same_story(exp_repo, workspace_exp, temp_exp, queued_exps):
    rows = json.loads(exp_repo.dvc("exp", "show", "--json").stdout)
    shown = {rev["name"]: rev["data"] for row in rows for exp in row.get("experiments") or []
             for rev in exp["revs"]}
    assert set(EXPERIMENT_LRS) <= set(shown)
    for name, lr in EXPERIMENT_LRS.items():
        data, run = shown[name], _only_run(exp_repo, name)
        assert data["params"]["params.yaml"]["data"]["binary_add"]["train"]["lr"] == lr
        train = data["metrics"]["metrics/binary_add/train.json"]["data"]
        test = data["metrics"]["metrics/binary_add/eval.json"]["data"]["test"]
        assert run["metrics"]["final_train_seconds"] == pytest.approx(train["train_seconds"])
        assert run["metrics"]["parameters"] == train["parameters"]
        assert run["metrics"]["test.exact_match"] == pytest.approx(test["exact_match"])


def test_run_cache_restore_makes_no_new_mlflow_run(exp_repo, temp_exp, queued_exps):
    from seqlab.core.checkpoint import MODEL_TAG, file_digest

    before = [r["id"] for r in mlflow_runs(exp_repo.db, "seqlab-binary_add")]
    # The --temp experiment already trained with this lr: DVC restores its outputs from the run-cache.
    out = exp_repo.dvc("exp", "run", "-S", f"binary_add.train.lr={EXPERIMENT_LRS['tmp-lr']}", "-n", "rc-again",
                       "evaluate@binary_add")
    stages = stage_outcomes(out.stdout)
    assert {"train@binary_add", "evaluate@binary_add"} <= stages["cached"], out.stdout[-2000:]
    assert not stages["ran"] & {"train@binary_add", "evaluate@binary_add"}
    assert [r["id"] for r in mlflow_runs(exp_repo.db, "seqlab-binary_add")] == before
    # The restored model is the one the --temp run trained, and its MLflow run is found by the digest tag.
    digest = file_digest(exp_repo.root / "models" / "binary_add.pt")
    assert _only_run(exp_repo, "tmp-lr")["tags"][MODEL_TAG] == digest


def test_artifacts_are_anchored_at_the_repo_root(exp_repo, workspace_exp, temp_exp, queued_exps):
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI; a check on that variable once made the
    # experiment fall back to <cwd>/mlruns, i.e. into the deleted temp copy for a queued first run.
    root = (exp_repo.root / "mlartifacts").as_uri()
    for name in ("ws-lr", "tmp-lr", "q-a", "q-b"):
        (run,) = runs_by_exp_name(exp_repo.db)[name]
        assert run["artifact_uri"].startswith(root), run["artifact_uri"]
    assert list((exp_repo.root / "mlartifacts").rglob("history.csv"))  # the files are really there
    assert not (exp_repo.root / "mlruns").exists()


def test_the_readmes_exp_show_line_fits_200_columns_after_a_one_param_change(exp_repo, workspace_exp):
    """The README's `dvc exp show` line, as printed there: after `-S binary_add.train.lr=...` the changed param
    is a column of its own and nothing is cut off (rich marks a column it had no room for with `…`)."""
    line = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("dvc exp show "))
    argv = shlex.split(line, comments=True)
    shown = run([*argv, "--no-pager"], exp_repo.root, {**exp_repo.env, "COLUMNS": "200"}).stdout
    assert max(len(row) for row in shown.splitlines()) <= 200, shown
    assert "binary_add.train.lr" in shown and "…" not in shown, shown
    assert str(EXPERIMENT_LRS["ws-lr"]) in shown and "src/seqlab" not in shown, shown
