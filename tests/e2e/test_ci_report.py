"""scripts/ci_report.sh, the logic of .github/workflows/pipeline.yml, run locally.

A "developer" repo pushes the base branch's DVC outputs to a local remote and makes a branch that
changes one binary_add param; a fresh `git clone` of that branch (what CI checks out: no DVC cache,
no outputs) runs the script against origin/main. Only the binary_add stages may rerun, and the
report must show the param and metric differences.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support import SEQUENCE_TARGETS, clone_pipeline, run, sandbox_env, stage_outcomes, tiny_params

SCRIPT = Path("scripts") / "ci_report.sh"
BASE_HIDDEN = tiny_params()["binary_add"]["model"]["hidden_size"]  # what the template repo trained


def _report_stages(report: str) -> dict[str, set[str]]:
    rows = {"ran": "ran", "restored from the run-cache": "cached", "unchanged": "unchanged"}
    found = {}
    for label, key in rows.items():
        m = re.search(rf"^\| {label} \| (.*) \|$", report, re.M)
        assert m, f"no '{label}' row in:\n{report}"
        found[key] = set(re.findall(r"`([^`]+)`", m.group(1)))
    return found


@pytest.fixture(scope="module")
def ci_run(pipeline_template, tmp_path_factory):
    base = tmp_path_factory.mktemp("ci")
    env = sandbox_env(base)
    dev = clone_pipeline(pipeline_template, base / "dev")
    run(["dvc", "remote", "add", "-d", "storage", str(base / "dvc-remote")], dev, env)
    run(["git", "commit", "-qam", "DVC remote"], dev, env)
    run(["dvc", "push"], dev, env)
    run(["git", "checkout", "-qb", "tweak"], dev, env)
    params = yaml.safe_load((dev / "params.yaml").read_text())
    params["binary_add"]["model"]["hidden_size"] = BASE_HIDDEN + 4
    (dev / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "wider binary_add LSTM"], dev, env)

    ci = base / "ci"
    run(["git", "clone", "-q", "--branch", "tweak", str(dev), str(ci)], base, env)
    assert not (ci / "models" / "binary_add.pt").exists()  # a CI checkout: no DVC outputs, no cache
    summary = base / "step-summary.md"
    proc = run(["bash", str(SCRIPT), "--base", "origin/main", "--out", str(base / "report.md"), "--",
                    *SEQUENCE_TARGETS], ci, {**env, "GITHUB_STEP_SUMMARY": str(summary)}, check=False)
    return proc, (base / "report.md").read_text(), summary.read_text()


def test_only_the_changed_task_reruns_after_pulling_the_rest(ci_run):
    proc, report, _ = ci_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "pulling the DVC cache" in proc.stderr
    stages = _report_stages(report)
    assert {"train@binary_add", "evaluate@binary_add"} <= stages["ran"]
    assert stages["ran"] <= {"validate", "train@binary_add", "evaluate@binary_add"}  # validate reads params.yaml
    assert {"generate@kth", "train@kth", "evaluate@kth", "generate@binary_add"} <= stages["unchanged"]
    assert stage_outcomes(proc.stdout)["ran"] == stages["ran"]  # the report lists what dvc printed


def test_report_shows_param_and_metric_differences(ci_run):
    _, report, summary = ci_run
    assert summary == report
    row = rf"^\| params\.yaml\s*\| binary_add\.model\.hidden_size\s*\| {BASE_HIDDEN}\s*\| {BASE_HIDDEN + 4}\s*\|"
    assert re.search(row, report, re.M), report
    assert "kth." not in report.split("### Params")[1].split("### Metrics")[0]
    metrics = report.split("### Metrics")[1]
    # 4 more hidden units change binary_add's parameter count (train.json holds only headline figures now)
    assert re.search(r"^\| metrics/binary_add/train\.json\s*\| parameters\s*\|", metrics, re.M), metrics
    assert "metrics/kth" not in metrics


@pytest.fixture(scope="module")
def local_repo(pipeline_template, tmp_path_factory):
    base = tmp_path_factory.mktemp("ci-local")
    return clone_pipeline(pipeline_template, base / "repo"), sandbox_env(base), base


def test_no_remote_and_no_change_reports_nothing_to_do(local_repo):
    repo, env, base = local_repo
    proc = run(["bash", str(SCRIPT), "--base", "main", "--out", str(base / "same.md"), *SEQUENCE_TARGETS],
               repo, env)
    report = (base / "same.md").read_text()
    assert "no DVC remote configured" in proc.stderr
    stages = _report_stages(report)
    assert stages["ran"] == set() and {"train@kth", "train@binary_add"} <= stages["unchanged"]
    assert "No param changes." in report and "No metric changes." in report


def test_failed_repro_fails_the_script_and_says_why(local_repo):
    repo, env, base = local_repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["binary_add"]["train"]["lr"] = -1.0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = run(["bash", str(SCRIPT), "--base", "main", "--out", str(base / "bad.md"), *SEQUENCE_TARGETS],
                   repo, env, check=False)
    finally:
        (repo / "params.yaml").write_text(original)
    report = (base / "bad.md").read_text()
    assert proc.returncode != 0
    assert "`dvc repro` failed" in report and "binary_add.train.lr" in report
