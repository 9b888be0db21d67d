"""Fixtures shared by both tiers; the helpers they use live in tests/support.py.

The session's `pipeline_template` is a tiny-params repo reproduced once; e2e modules clone it
(support.clone_pipeline). The experiment fixtures run `dvc exp run`/queues in one clone, in order.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.support import (
    EXPERIMENT_LRS,
    SEQUENCE_TARGETS,
    ExperimentsRepo,
    clone_pipeline,
    load_raw_params,
    pipeline_repo,
    run,
    run_queue,
    sandbox_env,
    tiny_params,
)

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the tier: a `slow` mark in tests/e2e (all of it slow) would be a second definition."""
    marked = [item.nodeid for item in items if item.path.is_relative_to(E2E) and item.get_closest_marker("slow")]
    if marked:
        raise pytest.UsageError(f"tests/e2e needs no `slow` mark (the folder is the tier): {marked}")


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


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory) -> Path:
    """A tiny-params repo with kth and binary_add reproduced and their outputs committed on main."""
    base = tmp_path_factory.mktemp("template")
    repo = pipeline_repo(base / "repo", tiny_params())
    env = sandbox_env(base)
    run(["dvc", "repro", *SEQUENCE_TARGETS], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "pipeline outputs"], repo, env)
    return repo


@pytest.fixture(scope="session")
def exp_repo(pipeline_template, tmp_path_factory) -> Iterator[ExperimentsRepo]:
    base = tmp_path_factory.mktemp("experiments")
    root = clone_pipeline(pipeline_template, base / "repo")
    env = sandbox_env(base)
    rev = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
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
