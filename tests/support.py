"""Helpers for the fault-injection tests (tests/test_reliability_*.py): isolated repo copies and runs.

Every copy lives under pytest's tmp dir and every command gets HOME, DVC_SITE_CACHE_DIR and the
MLflow store inside that copy, so nothing is written outside tmp dirs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TIMING_FIELDS = ("train_seconds", "epoch_seconds", "train_samples_per_s", "words_per_s")
SCRATCH = ("mlflow.db", "mlruns", "mlartifacts", ".seqlab", ".home", ".dvc-site-cache")


def env_for(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a command run in `root`: no outside MLflow store, DVC state or HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_URI", "DVC_"))}
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}", HOME=str(root / ".home"),
               DVC_SITE_CACHE_DIR=str(root / ".dvc-site-cache"), GIT_CONFIG_NOSYSTEM="1", **extra)
    (root / ".home").mkdir(exist_ok=True)
    return env


def run(cmd: list[str], root: Path, *, check: bool = True, timeout: float = 600, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, env=env or env_for(root), capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def read_params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def edited(params: dict, dotted: str, value: object) -> dict:
    """A deep copy of `params` with one key set (or deleted when value is DELETE)."""
    p = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = p
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return p


DELETE = object()


def clone_base(template: Path, tmp_path_factory, name: str) -> Path:
    """A full copy of conftest's `pipeline_template` (tiny params; kth and binary_add reproduced and committed:
    git, DVC cache, outputs), without its MLflow store and scratch state. Built once per session and shared
    with the other e2e tests, so each module starts from trained outputs without paying for them."""
    dest = tmp_path_factory.mktemp(name) / "repo"
    shutil.copytree(template, dest, symlinks=True, ignore=shutil.ignore_patterns(*SCRATCH))
    shutil.rmtree(dest / ".dvc" / "tmp", ignore_errors=True)  # DVC scratch state holds the template's paths
    (dest / ".git" / "info").mkdir(exist_ok=True)
    with open(dest / ".git" / "info" / "exclude", "a") as fh:
        fh.write(".home/\n.dvc-site-cache/\n")
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path, *rels: str) -> dict[str, str]:
    """sha256 of every file under the given paths (relative to root)."""
    out = {}
    for rel in rels:
        p = root / rel
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        out.update({str(f.relative_to(root)): sha256(f) for f in files})
    return out


def leftover_temps(root: Path) -> list[str]:
    """Temporary files of atomic writes (`.name.<pid>.xxx.tmp`) anywhere in the copy, except DVC's own."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp")
                  if ".dvc" not in p.relative_to(root).parts and ".git" not in p.relative_to(root).parts)


def lock_outs(root: Path) -> dict[str, str]:
    """{stage:path -> md5} for every output recorded in dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out.get("md5", "") for stage, body in lock["stages"].items()
            for out in body.get("outs", [])}


def without_timing(obj: object) -> object:
    """A metrics document with wall-clock fields removed (they differ between identical runs)."""
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING_FIELDS}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Assert the CLI failed the documented way (exit 1, one `seqlab: error:` line, no traceback)."""
    err = proc.stderr.strip()
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, err[-3000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err[-3000:]
    return lines[0]
