"""Parallel experiments: `dvc queue start -j N` with N experiments against the same N one after the other.

    python scripts/queue_parallel.py                       # two kth experiments, params.yaml's settings
    python scripts/queue_parallel.py --target ocr-train@crnn -S ocr.crnn.train.epochs=1
    python scripts/queue_parallel.py -S kth.train.epochs=1 -S kth.data.n_train=2000   # a smoke test

The project's committed state is cloned into a scratch directory (git clone; DVC's cache is the project's,
so stages whose outputs it holds are not rerun: `dvc repro` the project first). Each round queues the same
N experiments (`dvc exp run --queue`, the stage TARGET and its upstream stages, the k-th experiment of
the whole measurement with TASK.train.lr = lr x (1 + k/1000), so no two are the same run and none comes from
DVC's run cache) and times `dvc queue start -j J` until no
experiment is queued or running: J = 1 ("sequential") and J = N ("parallel"), in that order, each
`--repeats` times. Both rounds pay the same queue overhead (temporary directories, checkouts, commits), so
the ratio parallel / sequential is what running side by side costs; the target (issue 25) is at most
TARGET. Under the thread policy (docs/threads.md) each queued experiment takes cores / (experiments
running), so N side-by-side experiments do not oversubscribe the cores.

Prints the figure as the bench prints figures, and writes it as JSON with --out. It times wall clock: run
it on an otherwise idle machine; a busy one measures the other load. New objects go to the project's DVC
cache (`dvc gc` in the project removes them).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from seqlab.bench.report import figure
from seqlab.core.storage import write_json

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.15  # parallel / sequential wall time (issue 25)
POLL_S = 2.0  # between `dvc queue status` calls: each costs CPU the experiments need


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="DVC project to clone (default: this one)")
    parser.add_argument("--cache", type=Path, help="DVC cache the clone uses (default: the project's .dvc/cache)")
    parser.add_argument("--target", default="train@kth", help="stage the experiments reproduce (default train@kth)")
    parser.add_argument("--experiments", type=int, default=2, help="experiments per round and parallel jobs")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of rounds (sequential, parallel)")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="params for every experiment, as `dvc exp run -S` takes them (repeatable)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, help="write the figure as JSON here")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="seqlab-queue-"))
    try:
        result = measure(args.project.resolve(), (args.cache or args.project / ".dvc" / "cache").resolve(),
                         args.target, args.experiments, args.repeats, args.set_param, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    fig = result["figure"]
    print(f"parallel (-j {args.experiments}) / sequential (-j 1), {args.experiments} experiments of "
          f"{args.target}: {fig['ratio']['median']:.3f} (parallel {fig['ours']['median']:.1f} s, "
          f"sequential {fig['baseline']['median']:.1f} s); target <= {TARGET}: "
          f"{'met' if fig['met'] else 'NOT met'}")
    if args.out:
        write_json(args.out, result)
    return 0


def measure(project: Path, cache: Path, target: str, n: int, repeats: int, overrides: list[str],
            work: Path) -> dict[str, Any]:
    """Clone `project` into `work` and time the queue rounds; the figure and what was run."""
    repo = clone(project, cache, work / "repo")
    env = _env(work)
    key = lr_key(target)
    base = float(_param(repo, key))
    sequential: list[float] = []
    parallel: list[float] = []
    runs = 0  # every experiment gets its own learning rate: a repeated one would come from DVC's run cache
    for r in range(repeats):
        for jobs, times in ((1, sequential), (n, parallel)):
            names = [f"r{r}-j{jobs}-{i}" for i in range(n)]
            for name in names:
                runs += 1
                setting = f"{key}={base * (1 + runs / 1000):g}"
                _dvc(["exp", "run", "--queue", "-q", "-n", name, "-S", setting,
                      *(a for o in overrides for a in ("-S", o)), target], repo, env)
            times.append(run_queue(repo, env, jobs, names))
    fig = figure(parallel, sequential, unit="s", ours_label=f"-j {n}", baseline_label="-j 1", better="lower",
                 target=TARGET)
    return {"figure": fig, "settings": {"project": str(project), "target": target, "experiments": n,
                                        "params": overrides, "cpu_count": os.cpu_count()}}


def clone(project: Path, cache: Path, dest: Path) -> Path:
    """A git clone of `project`'s committed state that uses `cache` and can queue experiments."""
    subprocess.run(["git", "clone", "-q", str(project), str(dest)], check=True)
    for key, value in (("user.name", "queue-parallel"), ("user.email", "queue-parallel@localhost")):
        subprocess.run(["git", "config", key, value], cwd=dest, check=True)
    env = _env(dest.parent)
    _dvc(["cache", "dir", "--local", str(cache)], dest, env)
    _dvc(["checkout", "-q"], dest, env, check=False)  # outputs the cache lacks are rebuilt by the experiments
    return dest


def run_queue(repo: Path, env: dict[str, str], jobs: int, names: list[str]) -> float:
    """Seconds from `dvc queue start -j jobs` until nothing is queued or running; every one of `names` must
    have succeeded."""
    start = time.perf_counter()
    _dvc(["queue", "start", "-j", str(jobs)], repo, env)
    while True:
        time.sleep(POLL_S)
        status = _dvc(["queue", "status"], repo, env).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
    seconds = time.perf_counter() - start
    failed = [name for name in names if not _succeeded(status, name)]
    if failed:
        raise SystemExit(f"queue_parallel: experiments {', '.join(failed)} did not succeed:\n{status}\n"
                         f"(see `dvc queue logs NAME` in {repo}; a queued experiment commits every output of the "
                         "pipeline, so the cache must hold the committed ones: `dvc repro` the project first)")
    return seconds


def _succeeded(status: str, name: str) -> bool:
    return any(name in line.split() and "Success" in line for line in status.splitlines())


def lr_key(target: str) -> str:
    """The learning-rate key of the stage `target` trains: train@kth -> kth.train.lr, ocr-train@crnn ->
    ocr.crnn.train.lr."""
    stage, _, item = target.partition("@")
    if not item or stage not in ("train", "ocr-train"):
        raise SystemExit(f"queue_parallel: --target {target!r}: expected train@TASK or ocr-train@VARIANT")
    return f"{item}.train.lr" if stage == "train" else f"ocr.{item}.train.lr"


def _param(repo: Path, dotted: str) -> Any:
    node: Any = yaml.safe_load((repo / "params.yaml").read_text())
    for key in dotted.split("."):
        node = node[key]
    return node


def _env(work: Path) -> dict[str, str]:
    site = work / "dvc-site-cache"
    site.mkdir(parents=True, exist_ok=True)
    # DVC starts its queue workers as `dvc` from PATH: without this venv's bin there (a script run as
    # .venv/bin/python, venv not activated), no worker starts and the experiments stay queued.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
            "DVC_SITE_CACHE_DIR": str(site)}


def _dvc(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"queue_parallel: dvc {' '.join(args)} failed in {cwd}: {proc.stderr.strip()[-800:]}")
    return proc


if __name__ == "__main__":
    sys.exit(main())
