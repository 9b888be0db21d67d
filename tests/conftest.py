"""Shared fixtures: the repo's own params, a tiny-params variant, and a helper to copy the repo."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
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
    d["counts"] = {"train": 48, "val": 16, "test": 16, "test_heldout_fonts": 16}
    d["workers"] = 1
    for variant in ("rnn", "crnn"):
        p["ocr"][variant]["train"].update(epochs=1, batch_size=16)
    return p


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
