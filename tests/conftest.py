"""Shared fixtures: the repo's own params, a tiny-params variant, helpers to copy the repo and run the
pipeline in a sandboxed temp repo, and the session's reproduced tiny-params template repo."""

from __future__ import annotations

import copy
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def load_raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def tiny_params() -> dict:
    """params.yaml shrunk so the whole pipeline runs in well under a minute."""
    p = copy.deepcopy(load_raw_params())
    p["kth"]["data"].update(n_train=400, n_val=100, n_test=100, n_generalization=100)
    p["binary_add"]["data"].update(n_train=300, n_val=60, n_test=60, n_generalization=30, generalization_bits=32)
    for task in ("kth", "binary_add"):
        p[task]["train"].update(epochs=2)
    d = p["ocr"]["data"]
    d["counts"] = {"train": 48, "val": 16, "test": 16, "test_heldout_fonts": 16, "test_lines": 8}
    d["workers"] = 1
    d["font_sources"] = ["trdg"]  # runs without the Debian font packages (`make fonts`)
    d["lines"]["share"] = 0.5  # the pipeline tests render, train on and evaluate line images too
    p["ocr"]["reserved"].update(count=20, lines=8, scans=8, workers=1)
    p["ocr"]["augment"]["enabled"] = True  # the pipeline tests train (and resume) OCR the way params.yaml does
    for variant in ("bilstm", "crnn"):
        p["ocr"][variant]["train"].update(epochs=1, batch_size=16)
    return p


class CarryAdder(torch.nn.Module):
    """A binary_add "model" that adds the two bit columns with a carry, LSB first: always right (sum-bit logits)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, carry = [], torch.zeros(x.shape[0])
        for t in range(x.shape[1]):
            s = x[:, t, 0] + x[:, t, 1] + carry
            out.append((s % 2) * 20 - 10)
            carry = (s >= 2).float()
        return torch.stack(out, 1)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine it can cost ~20x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def raw_params() -> dict:
    return load_raw_params()


def copy_repo(dest: Path) -> Path:
    """Copy the working tree (tracked and untracked, minus ignored outputs) into a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=seqlab-test", "-c", "user.email=test@seqlab.local", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "config", "user.name", "seqlab-test"], cwd=dest, check=True)
    subprocess.run(["git", "config", "user.email", "test@seqlab.local"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "test copy"], cwd=dest, check=True)
    return dest


# --- temp-repo helpers for the end-to-end tests (dvc, queues, MLflow, CI script) -------------------

# Pipeline outputs that a copy of the working tree may carry (colleagues run stages in the tree);
# dropped so each temp repo starts from its own, tiny-params outputs.
PIPELINE_OUTPUTS = ("data", "models", "metrics", "dvc.lock")
# The stages the e2e tests run: both sequence tasks (kth is there to prove that editing a
# binary_add param leaves it alone); the OCR stages are slow and covered elsewhere.
SEQUENCE_TARGETS = ("evaluate@kth", "evaluate@binary_add")


def run_cmd(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def sandbox_env(sandbox: Path) -> dict[str, str]:
    """Env for dvc/seqlab/mlflow in a temp repo that writes nothing outside `sandbox`.

    HOME (so ~/.cache, ~/.config, matplotlib, git global config), TMPDIR and DVC's site cache
    (/var/tmp/dvc by default) point into it; user MLflow/DVC/GitHub settings are dropped so runs
    use the store at the temp repo's root.
    """
    dirs = {name: sandbox / name for name in ("home", "tmp", "dvc-site-cache")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GITHUB_", "GIT_"))}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    env.update(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]), DVC_SITE_CACHE_DIR=str(dirs["dvc-site-cache"]),
               DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def stage_outcomes(output: str) -> dict[str, set[str]]:
    """Stages `dvc repro`/`dvc exp run` ran, restored from the run-cache, or found unchanged."""
    found: dict[str, set[str]] = {"ran": set(), "cached": set(), "unchanged": set()}
    for line in output.splitlines():
        if "'" not in line:
            continue
        name = line.split("'")[1]
        if line.startswith("Running stage '"):
            found["ran"].add(name)
        elif line.startswith("Stage '") and "is cached" in line:
            found["cached"].add(name)
        elif line.startswith("Stage '") and "didn't change" in line:
            found["unchanged"].add(name)
    return found


def pipeline_repo(dest: Path, params: dict) -> Path:
    """copy_repo() without pipeline outputs, with `params` as params.yaml, committed."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_repo(dest)
    subprocess.run(["git", "rm", "-rq", "--cached", "--ignore-unmatch", *PIPELINE_OUTPUTS], cwd=dest, check=True)
    for name in PIPELINE_OUTPUTS:
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-qm", "tiny params, no outputs"], cwd=dest, check=True)
    return dest


def clone_pipeline(template: Path, dest: Path) -> Path:
    """A full copy of a reproduced template repo (git, DVC cache, outputs), minus its MLflow store
    and DVC scratch state, which hold absolute paths of the template."""
    shutil.copytree(template, dest, symlinks=True)
    for name in ("mlflow.db", "mlruns", "mlartifacts", ".seqlab", ".dvc/tmp"):
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return dest


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory) -> Path:
    """A tiny-params repo with kth and binary_add reproduced and their outputs committed on main."""
    base = tmp_path_factory.mktemp("template")
    repo = pipeline_repo(base / "repo", tiny_params())
    env = sandbox_env(base)
    run_cmd(["dvc", "repro", *SEQUENCE_TARGETS], repo, env)
    run_cmd(["git", "add", "-A"], repo, env)
    run_cmd(["git", "commit", "-qm", "pipeline outputs"], repo, env)
    return repo


def mlflow_runs(db: Path, experiment: str) -> list[dict]:
    """Runs of one experiment in an MLflow SQLite store, read with sqlite3 (importing mlflow here
    would set MLFLOW_TRACKING_URI for the whole test process)."""
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.artifact_uri FROM runs r "
            "JOIN experiments e ON e.experiment_id = r.experiment_id "
            "WHERE e.name = ? AND r.lifecycle_stage = 'active' ORDER BY r.start_time", (experiment,)).fetchall()
        runs = []
        for run_id, name, status, start, end, artifact_uri in rows:
            def table(sql: str, run_id: str = run_id) -> dict:
                return dict(con.execute(sql, (run_id,)).fetchall())
            runs.append({"id": run_id, "name": name, "status": status, "start": start, "end": end,
                         "artifact_uri": artifact_uri,
                         "tags": table("SELECT key, value FROM tags WHERE run_uuid = ?"),
                         "params": table("SELECT key, value FROM params WHERE run_uuid = ?"),
                         "metrics": table("SELECT key, value FROM latest_metrics WHERE run_uuid = ?")})
        return runs
    finally:
        con.close()


def runs_by_exp_name(db: Path, experiment: str = "seqlab-binary_add") -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for r in mlflow_runs(db, experiment):
        found.setdefault(r["tags"].get("dvc.exp_name", ""), []).append(r)
    return found


@dataclass
class ExperimentsRepo:
    """A clone of the template where the experiment fixtures below run, in this order."""

    root: Path
    env: dict[str, str]
    baseline_rev: str
    results: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.root / "mlflow.db"

    def dvc(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return run_cmd(["dvc", *args], self.root, self.env, check=check, timeout=timeout)


# name -> binary_add.train.lr of the experiments the fixtures run (baseline: 0.01 in params.yaml)
EXPERIMENT_LRS = {"ws-lr": 0.02, "tmp-lr": 0.03, "q-a": 0.005, "q-b": 0.04}


@pytest.fixture(scope="session")
def exp_repo(pipeline_template, tmp_path_factory) -> Iterator[ExperimentsRepo]:
    base = tmp_path_factory.mktemp("experiments")
    root = clone_pipeline(pipeline_template, base / "repo")
    env = sandbox_env(base)
    rev = run_cmd(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    repo = ExperimentsRepo(root, env, rev)
    yield repo
    # Queue workers are detached daemons: never leave one running over a deleted temp dir.
    repo.dvc("queue", "stop", "--kill", check=False, timeout=120)


def _exp_run(repo: ExperimentsRepo, name: str, *flags: str) -> subprocess.CompletedProcess:
    return repo.dvc("exp", "run", *flags, "-S", f"binary_add.train.lr={EXPERIMENT_LRS[name]}", "-n", name,
                    "evaluate@binary_add")


@pytest.fixture(scope="session")
def workspace_exp(exp_repo) -> subprocess.CompletedProcess:
    exp_repo.results["ws-lr"] = _exp_run(exp_repo, "ws-lr")
    return exp_repo.results["ws-lr"]


@pytest.fixture(scope="session")
def temp_exp(exp_repo, workspace_exp) -> subprocess.CompletedProcess:
    exp_repo.results["tmp-lr"] = _exp_run(exp_repo, "tmp-lr", "--temp")
    return exp_repo.results["tmp-lr"]


@pytest.fixture(scope="session")
def queued_exps(exp_repo) -> str:
    """Queue q-a and q-b, run them with `dvc queue start -j 2`, wait; returns the final queue status."""
    for name in ("q-a", "q-b"):
        exp_repo.results[name] = _exp_run(exp_repo, name, "--queue")
    return run_queue(exp_repo)


def run_queue(repo: ExperimentsRepo, jobs: int = 2, timeout: float = 900) -> str:
    """`dvc queue start -j jobs`, then wait until nothing is queued or running; returns `dvc queue status`."""
    repo.dvc("queue", "start", "-j", str(jobs))
    deadline = time.monotonic() + timeout
    while True:
        # Poll sparingly: each dvc call costs CPU that the training runs need.
        time.sleep(5)
        status = repo.dvc("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"queue still busy after {timeout:.0f} s:\n{status}")
