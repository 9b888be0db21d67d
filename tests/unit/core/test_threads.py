"""The thread policy: threads from affinity, ranks and queued experiments; user overrides win; applied by the
entry point before torch loads (libgomp prints the values it read, OMP_DISPLAY_ENV, in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.core import threads
from seqlab.core.threads import ThreadPolicyError

REPO = Path(__file__).resolve().parents[3]
# Runs the real entry point with `validate` replaced by a probe that loads torch and reports what it got.
PROBE = """
import json, os, sys
import seqlab.cli as cli
def probe(args):
    assert "torch" not in sys.modules
    import torch
    print(json.dumps({"threads": torch.get_num_threads(),
                      "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY",
                                                             "MKL_CBWR", "SEQLAB_THREAD_POLICY_SET")}}))
    return 0
cli.cmd_validate = probe
sys.exit(cli.main(["validate"]))
"""
CLEAN = (*threads.VARS, threads.SET_ENV, threads.SWITCH_ENV, threads.THREADS_ENV, threads.SPIN_ENV,
         threads.RANK_THREADS_ENV, "LOCAL_RANK", "LOCAL_WORLD_SIZE", "DVC_EXP_NAME", "DVC_ROOT", "MKL_NUM_THREADS")


def _probe(cpus: set[int] | None = None, **env: str) -> tuple[dict, str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEAN}
    base.update(PYTHONPATH=str(REPO / "src"), OMP_DISPLAY_ENV="VERBOSE", **env)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=base, capture_output=True, text=True, timeout=120,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _displayed(stderr: str, name: str) -> str:
    """The value libgomp says it read for `name` (OMP_DISPLAY_ENV output, printed when its runtime starts)."""
    for line in stderr.splitlines():
        if line.strip().startswith(f"{name} ="):
            return line.split("=", 1)[1].strip().strip("'")
    raise AssertionError(f"libgomp did not display {name}:\n{stderr}")


needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")


@pytest.mark.slow  # each probe starts `seqlab` in a process that imports torch
@needs_affinity
def test_entry_point_applies_the_policy_before_torch_loads():
    one_cpu = {min(os.sched_getaffinity(0))}
    got, stderr = _probe(one_cpu)
    assert got["threads"] == 1 and got["env"]["OMP_NUM_THREADS"] == "1"
    assert threads.SPINCOUNT is None and got["env"]["GOMP_SPINCOUNT"] is None  # libgomp's own (measured better)
    assert got["env"]["MKL_CBWR"] == "AUTO,STRICT"  # results independent of the thread count
    assert got["env"]["SEQLAB_THREAD_POLICY_SET"] == "OMP_NUM_THREADS,MKL_CBWR"
    all_cpus, _ = _probe()
    assert all_cpus["threads"] == len(os.sched_getaffinity(0))


@pytest.mark.slow  # each probe starts `seqlab` in a process that imports torch
def test_user_settings_win():
    got, stderr = _probe(OMP_NUM_THREADS="1", GOMP_SPINCOUNT="1234", MKL_CBWR="COMPATIBLE")
    assert got["threads"] == 1 and _displayed(stderr, "GOMP_SPINCOUNT") == "1234"
    assert got["env"]["MKL_CBWR"] == "COMPATIBLE" and got["env"]["SEQLAB_THREAD_POLICY_SET"] == ""
    got, stderr = _probe(OMP_WAIT_POLICY="PASSIVE", SEQLAB_THREADS="1")
    assert got["threads"] == 1 and got["env"]["GOMP_SPINCOUNT"] is None  # a wait policy keeps our spin count out
    assert _displayed(stderr, "OMP_WAIT_POLICY") == "PASSIVE"
    got, stderr = _probe(SEQLAB_SPINCOUNT="77", SEQLAB_THREADS="1")
    assert _displayed(stderr, "GOMP_SPINCOUNT") == "77"


def test_policy_off_leaves_torch_defaults():
    got, _ = _probe(SEQLAB_THREAD_POLICY="off")
    assert got["env"] == {"OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None,
                          "MKL_CBWR": None, "SEQLAB_THREAD_POLICY_SET": None}


def test_a_bad_override_is_one_line_and_exit_1():
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    proc = subprocess.run([sys.executable, "-m", "seqlab.cli", "validate"], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO / "src"), "SEQLAB_THREADS": "two"}, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "seqlab: error: SEQLAB_THREADS='two': expected a whole number"


def test_threads_from_cores_ranks_and_overrides():
    assert threads.choose({}, 16).threads == 16
    assert threads.choose({"LOCAL_WORLD_SIZE": "4"}, 16).threads == 4
    assert threads.choose({"LOCAL_WORLD_SIZE": "32"}, 16).threads == 1
    assert threads.choose({"SEQLAB_THREADS": "3"}, 16).threads == 3
    rank = {"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "SEQLAB_THREADS": "3"}
    assert threads.choose(rank, 16).threads == 3
    assert threads.choose({**rank, "SEQLAB_THREADS_PER_RANK": "5"}, 16).threads == 5
    assert threads.choose({"SEQLAB_THREADS_PER_RANK": "5"}, 16).threads == 16  # a rank's setting, outside ranks
    with pytest.raises(ThreadPolicyError, match="SEQLAB_SPINCOUNT='x'"):
        threads.choose({"SEQLAB_SPINCOUNT": "x"}, 2)


def _info(root: Path, rev: str, status: int, location: str = "tempdir", exists: bool = True) -> None:
    path = root / ".dvc" / "tmp" / "exps" / "run" / rev / f"{rev}.run"
    path.parent.mkdir(parents=True)
    workdir = root / ".dvc" / "tmp" / "exps" / f"tmp{rev}"
    if exists:
        workdir.mkdir(parents=True)
    path.write_text(json.dumps({"git_url": "", "status": status, "location": location, "root_dir": str(workdir)}))


def test_running_queued_experiments_share_the_cores(tmp_path):
    for rev, status in (("a", 2), ("b", 1), ("c", 3), ("d", 0)):  # running, preparing, success, pending
        _info(tmp_path, rev, status)
    _info(tmp_path, "w", 2, location="workspace")  # a plain `dvc exp run`: this process itself
    _info(tmp_path, "k", 1, exists=False)  # a killed run's leftover
    (tmp_path / ".dvc" / "tmp" / "exps" / "run" / "e").mkdir()
    (tmp_path / ".dvc" / "tmp" / "exps" / "run" / "e" / "e.run").write_text("{not json")
    inside = {"DVC_ROOT": str(tmp_path), "DVC_EXP_NAME": "exp-1"}
    assert threads.running_queued_experiments(inside) == 2
    assert threads.running_queued_experiments({"DVC_ROOT": str(tmp_path)}) == 0  # not an experiment
    assert threads.choose(inside, 4).threads == 2
    assert threads.choose({**inside, "LOCAL_WORLD_SIZE": "2"}, 4).sharers == 4


def test_a_child_derives_what_the_policy_set_but_keeps_what_the_user_set():
    env = {"GOMP_SPINCOUNT": "5"}
    threads.write(env)
    assert env["GOMP_SPINCOUNT"] == "5" and env[threads.SET_ENV] == "OMP_NUM_THREADS,MKL_CBWR"
    launcher = {}
    threads.write(launcher)
    rank = {**launcher, "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    threads.write(rank)
    assert rank["OMP_NUM_THREADS"] == str(max(1, threads.cores() // 2))
    assert "GOMP_SPINCOUNT" not in rank


def test_apply_does_nothing_once_torch_is_loaded():
    import torch  # noqa: F401  (loaded by this test process anyway)

    env: dict[str, str] = {}
    assert threads.apply(env) is None and env == {}
