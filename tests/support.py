"""The one helper module of the test suite: params, temp repos, sandboxed commands, MLflow stores.

Unit tests use the params helpers; e2e tests (tests/e2e) copy the repo or clone conftest's reproduced
`pipeline_template`, and run every command through `run` with a `sandbox_env`, so nothing is written
outside pytest's tmp dirs. Fixtures live in tests/conftest.py; import these as `from tests.support import ...`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
SCRIPTS = REPO / "scripts"
TIMING_FIELDS = ("train_seconds", "epoch_seconds", "cpu_seconds", "train_samples_per_s", "words_per_s")


# --- params -------------------------------------------------------------------------------------

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


def tiny_ocr_checkpoint(path: Path, charset: str, height: int) -> Path:
    """An untrained, tiny CRNN checkpoint (seconds to load and run): predict's plumbing, not its accuracy."""
    from seqlab.core.checkpoint import save_checkpoint
    from seqlab.tasks.ocr.config import CRNNConfig
    from seqlab.tasks.ocr.recognizer.models import CRNN, model_config

    model_params = {"channels": [8, 16], "hidden_size": 16, "num_layers": 1, "downsample": 4, "pool": "stride",
                    "frames_per_step": 1, "dropout": 0.0}
    torch.manual_seed(0)
    model = CRNN(model_config(CRNNConfig, **model_params), len(charset) + 1, height)
    config = {"task": "ocr", "variant": "crnn", "seed": 0, "model": model_params, "train": {},
              "meta": {"charset": charset, "height": height}}
    save_checkpoint(path, {"task": "ocr", "variant": "crnn", "config": config, "model_state": model.state_dict(),
                           "meta": {}})
    return path


def load_script(path: Path) -> ModuleType:
    """A script or benchmark of the repository (not a package module) imported by path, as its tests need it."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def kill_after_first_epoch(cmd: list[str], clean: Path, killed: Path, env: dict[str, str], resume_glob: str,
                           what: str) -> subprocess.Popen[str]:
    """Start `cmd` in `clean` (the uninterrupted reference, returned running) and in `killed`; SIGKILL the latter
    once its resume file of epoch 1 exists (epoch 2 is running). The 300 s guard only stops a hang."""
    reference = subprocess.Popen(cmd, cwd=clean, env=sandbox_env(clean / SANDBOX, **env), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen(cmd, cwd=killed, env=sandbox_env(killed / SANDBOX, **env), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_dir = killed / ".seqlab" / "resume"
    try:
        deadline = time.monotonic() + 300
        while not list(resume_dir.glob(resume_glob)):  # epoch 1 is saved: epoch 2 is running
            assert proc.poll() is None, f"{what} ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of epoch 1 within 300 s"
            time.sleep(0.02)
        assert proc.poll() is None, f"{what} ended before it could be killed; make epochs longer"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return reference


class CarryAdder(torch.nn.Module):
    """A binary_add "model" that adds the two bit columns with a carry, LSB first: always right (sum-bit logits)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, carry = [], torch.zeros(x.shape[0])
        for t in range(x.shape[1]):
            s = x[:, t, 0] + x[:, t, 1] + carry
            out.append((s % 2) * 20 - 10)
            carry = (s >= 2).float()
        return torch.stack(out, 1)


# --- sandboxed commands -----------------------------------------------------------------------------

# Where `run` puts a repo's HOME, TMPDIR and DVC site cache when no env is given: inside the repo,
# git-excluded by copy_repo, and skipped by the output checks below.
SANDBOX = ".sandbox"
# State a copy must not inherit from its template: the MLflow store and scratch dirs hold its absolute paths.
SCRATCH = ("mlflow.db", "mlruns", "mlartifacts", ".seqlab", SANDBOX)


def sandbox_env(sandbox: Path, **extra: str) -> dict[str, str]:
    """Env for dvc/seqlab/mlflow that writes nothing outside `sandbox` (and the repo it runs in).

    HOME (so ~/.cache, ~/.config, matplotlib, git global config), TMPDIR and DVC's site cache
    (/var/tmp/dvc by default) point into it; user MLflow/DVC/GitHub/git settings are dropped so runs
    use the store at the repo's root. `extra` is set last (MLFLOW_TRACKING_URI, DVC_ROOT...).
    """
    dirs = {name: sandbox / name for name in ("home", "tmp", "dvc-site-cache")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GITHUB_", "GIT_"))}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    env.update(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]), DVC_SITE_CACHE_DIR=str(dirs["dvc-site-cache"]),
               DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1", GIT_CONFIG_NOSYSTEM="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, *, check: bool = True, timeout: float = 900,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run `cmd` in `cwd` (env: `sandbox_env(cwd / SANDBOX)` unless given); with `check`, a failure raises
    with the tail of its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or sandbox_env(cwd / SANDBOX), capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


# --- temp repos -----------------------------------------------------------------------------------

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
    (dest / ".git" / "info").mkdir(exist_ok=True)
    with open(dest / ".git" / "info" / "exclude", "a") as fh:
        fh.write(f"{SANDBOX}/\n")  # run()'s default sandbox; clones inherit the exclude
    subprocess.run(["git", "config", "user.name", "seqlab-test"], cwd=dest, check=True)
    subprocess.run(["git", "config", "user.email", "test@seqlab.local"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "test copy"], cwd=dest, check=True)
    return dest


# Pipeline outputs that a copy of the working tree may carry (colleagues run stages in the tree);
# dropped so each temp repo starts from its own, tiny-params outputs.
PIPELINE_OUTPUTS = ("data", "models", "metrics", "dvc.lock")
# The stages the e2e tests run: both sequence tasks (kth is there to prove that editing a
# binary_add param leaves it alone); the OCR stages are slow and covered elsewhere.
SEQUENCE_TARGETS = ("evaluate@kth", "evaluate@binary_add")


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
    """A full copy of a reproduced template repo (git, DVC cache, outputs; conftest's `pipeline_template`),
    minus its MLflow store and scratch state, which hold absolute paths of the template. Each e2e module
    starts from trained outputs without paying for them."""
    shutil.copytree(template, dest, symlinks=True, ignore=shutil.ignore_patterns(*SCRATCH))
    shutil.rmtree(dest / ".dvc" / "tmp", ignore_errors=True)  # DVC scratch state holds the template's paths
    return dest


# --- MLflow stores and experiments ----------------------------------------------------------------

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
        return run(["dvc", *args], self.root, self.env, check=check, timeout=timeout)


# name -> binary_add.train.lr of the experiments the fixtures run (baseline: 0.01 in params.yaml)
EXPERIMENT_LRS = {"ws-lr": 0.02, "tmp-lr": 0.03, "q-a": 0.005, "q-b": 0.04}


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


# --- params edits and checks on a repo's outputs -------------------------------------------------

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


DELETE = object()  # edited(): remove the key


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
                  if not {".dvc", ".git", SANDBOX} & set(p.relative_to(root).parts))


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


# --- mlflow models serve -----------------------------------------------------------------------------

SERVE_READY_S = 180.0  # ~10 s on an idle machine; generous for a busy one


SERVING_DOC = REPO / "docs" / "models-and-serving.md"  # where the serving examples are documented


def documented_serve_example(index: int = 0) -> tuple[str, list[str]]:
    """(the `mlflow models serve` line, the curl lines) of docs/models-and-serving.md's `index`-th serving
    example (0: the pyfunc model's, 1: the ONNX model's)."""
    text = SERVING_DOC.read_text()
    block = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "mlflow models serve" in b][index]
    lines = block.strip().splitlines()
    serve = next(line for line in lines if "mlflow models serve" in line)
    return serve, [line for line in lines if line.startswith("curl ")]


@contextlib.contextmanager
def served(command: str, root: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen]:
    """Run a serve command line in its own process group; wait (bounded) until /ping answers; stop the group."""
    proc = subprocess.Popen(["bash", "-c", command.rstrip(" &")], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVE_READY_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{command} exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{command}: no answer on port {port} after {SERVE_READY_S:.0f} s"
            time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        end = time.monotonic() + 30
        while _group_members(proc.pid) and time.monotonic() < end:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _group_members(pgid: int) -> list:
    sys.path.insert(0, str(TOOLS))  # the process-group helper of the MLflow server tool
    from mlflow_server import group_members

    return group_members(pgid)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the MLflow server tool's)."""
    sys.path.insert(0, str(TOOLS))
    from mlflow_server import free_port as pick

    return pick()
