"""How many threads a seqlab process takes and how its OpenMP threads wait: set before torch loads.

Why: torch's CPU wheel runs its intra-op pool on GNU OpenMP (libgomp, bundled as torch/lib/libgomp.so.1; MKL
uses the same runtime). A libgomp thread that waits at a barrier spins GOMP_SPINCOUNT times before it sleeps;
the default, 300,000 spins, is about 3 ms by libgomp's own estimate of 100,000 spins per ms. An LSTM step is
thousands of small parallel regions, each ending at a barrier, so on a machine where another process holds
a core the waiting thread spins away the time slice its partner needs. Measured on 2 cores beside one busy
process (docs/threads.md): the OCR BiLSTM step fell to 0.12x its idle speed, the CRNN to 0.29x;
OMP_WAIT_POLICY=PASSIVE (no spinning) held them at 0.49-1.7x but cost 24-68% on the idle machine, one thread
cost 30-50% there. A short spin keeps the idle speed (the next region starts within tens of microseconds, so
the waiting thread is still spinning) and bounds the waste under load: the policy sets GOMP_SPINCOUNT to
SPINCOUNT. libgomp reads its environment once, when the runtime starts (when torch is imported), hence
`apply` runs first thing in the console entry point.

Threads: the cores this process may run on (os.sched_getaffinity), shared by the processes that train side
by side on purpose: the DDP ranks on this node (LOCAL_WORLD_SIZE) times the queued DVC experiments running
now (`dvc queue start -j N`: the executors whose info file says preparing or running). At least 1. While it
trains, the loop tunes the count within 1..threads by timing its steps (seqlab.training.thread_tuner).

Numerics: MKL_CBWR=AUTO,STRICT (MKL's conditional numerical reproducibility, strict mode: its GEMMs give the
same bits whatever the thread count, on this machine's own code path), so that a changed count changes no result.

Overrides, strongest first; the policy never replaces what the user set:
- OMP_NUM_THREADS, OMP_WAIT_POLICY, GOMP_SPINCOUNT set by the user are left alone (either wait setting keeps
  the policy's GOMP_SPINCOUNT out);
- SEQLAB_THREADS=N threads per process, SEQLAB_SPINCOUNT=N spins; in a DDP rank SEQLAB_THREADS_PER_RANK=N
  (torchrun writes OMP_NUM_THREADS=1 into a rank's environment, so there it is not taken for the user's);
- SEQLAB_THREAD_POLICY=off: torch's defaults.
What the policy set itself is listed in SEQLAB_THREAD_POLICY_SET, so a child process (a DDP rank, a process
a stage starts) derives its own values instead of taking them for the user's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from seqlab.core.errors import SeqlabError

# libgomp's own spin count unless SEQLAB_SPINCOUNT says otherwise: 10,000 (~0.1 ms), tried as the default, measured
# worse on an idle 2-core machine (bench threads section, 2026-12-07: BiLSTM busy/idle 0.14 against torch's 0.28,
# kth 0.16 against 0.25, 9-11% slower idle; the CRNN alike either way), so the policy sets threads only.
SPINCOUNT: int | None = None
THREADS_ENV = "SEQLAB_THREADS"
RANK_THREADS_ENV = "SEQLAB_THREADS_PER_RANK"
SPIN_ENV = "SEQLAB_SPINCOUNT"
SWITCH_ENV = "SEQLAB_THREAD_POLICY"  # "off": torch's defaults
SET_ENV = "SEQLAB_THREAD_POLICY_SET"  # the variables the policy wrote (comma-separated)
VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_CBWR")  # what the policy may set
REPRODUCIBLE = "AUTO,STRICT"  # MKL_CBWR: MKL's best code path here, bits independent of the thread count
_RUNNING = (1, 2)  # dvc's TaskStatus PREPARING, RUNNING (dvc/repo/experiments/executor/base.py)


class ThreadPolicyError(SeqlabError):
    """A thread-policy variable that is not a whole number."""


@dataclass(frozen=True)
class Policy:
    """What a process takes: `threads` intra-op threads, `spincount` libgomp spins before a waiter sleeps
    (None: the runtime's default or the user's wait setting), and `sharers` (processes sharing the cores)."""

    threads: int
    spincount: int | None
    cores: int
    sharers: int

    def env(self) -> dict[str, str]:
        out = {"OMP_NUM_THREADS": str(self.threads), "MKL_CBWR": REPRODUCIBLE}
        if self.spincount is not None:
            out["GOMP_SPINCOUNT"] = str(self.spincount)
        return out


def user_env(env: Mapping[str, str]) -> dict[str, str]:
    """The OpenMP variables the user set: those present and not written by an earlier policy. In a DDP rank
    OMP_NUM_THREADS is not the user's: torchrun writes 1 there when it is unset (use SEQLAB_THREADS_PER_RANK)."""
    ours = set(env.get(SET_ENV, "").split(","))
    if "LOCAL_RANK" in env:
        ours.add("OMP_NUM_THREADS")
    return {k: env[k] for k in VARS if k in env and k not in ours}


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, as taskset or a container's cpuset gives it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose(env: Mapping[str, str], n_cores: int | None = None) -> Policy:
    """The policy for a process with environment `env` (user overrides included) on `n_cores` cores."""
    n_cores = cores() if n_cores is None else n_cores
    ranks = _whole(env, "LOCAL_WORLD_SIZE", 1)
    sharers = max(1, ranks) * max(1, running_queued_experiments(env))
    threads = max(1, n_cores // sharers)
    if env.get(THREADS_ENV):
        threads = max(1, _whole(env, THREADS_ENV, threads))
    if "LOCAL_RANK" in env and env.get(RANK_THREADS_ENV):
        threads = max(1, _whole(env, RANK_THREADS_ENV, threads))
    user = user_env(env)
    spincount = None if "OMP_WAIT_POLICY" in user or "GOMP_SPINCOUNT" in user else _spin(env)
    return Policy(threads=threads, spincount=spincount, cores=n_cores, sharers=sharers)


def apply(env: MutableMapping[str, str] | None = None) -> Policy | None:
    """Write the policy into `env` (os.environ) unless it is off; None when it is off or comes too late.

    Only a process that has not loaded torch yet: after that the OpenMP runtime has read its environment
    (a library caller, a test process), and changing the environment would only mislead child processes.
    """
    env = os.environ if env is None else env
    if env.get(SWITCH_ENV, "").lower() == "off" or "torch" in sys.modules:
        return None
    return write(env)


def write(env: MutableMapping[str, str]) -> Policy:
    """Set the policy's variables in `env`, leaving those the user set, and list what it set in SET_ENV."""
    policy = choose(env)
    user = user_env(env)
    written = [k for k in VARS if k not in user]
    for key in written:
        env.pop(key, None)  # an earlier policy's value: this process derives its own
    for key, value in policy.env().items():
        if key in written:
            env[key] = value
    env[SET_ENV] = ",".join(k for k in written if k in env)
    return policy


def running_queued_experiments(env: Mapping[str, str]) -> int:
    """DVC experiments preparing or running in temporary directories of the repository this one belongs to,
    counted from their executors' info files (`.dvc/tmp/exps/run/<rev>/<rev>.run`); 0 outside `dvc exp run`.
    Only queued ones (location "tempdir") whose directory still exists: a plain `dvc exp run` in the workspace
    leaves info files that say "preparing" for the whole run, and a killed run leaves its file behind."""
    root = env.get("DVC_ROOT")
    if not env.get("DVC_EXP_NAME") or not root:
        return 0
    count = 0
    for path in Path(root, ".dvc", "tmp", "exps", "run").glob("*/*.run"):
        try:
            info = json.loads(path.read_text())
            running = info.get("status") in _RUNNING and info.get("location") == "tempdir"
        except (OSError, ValueError, AttributeError):
            continue  # being written, or removed as we read: not a running experiment to count
        count += running and Path(str(info.get("root_dir"))).is_dir()
    return count


def _spin(env: Mapping[str, str]) -> int | None:
    """SEQLAB_SPINCOUNT when set, else SPINCOUNT (None: libgomp's own)."""
    return _whole(env, SPIN_ENV, 0) if env.get(SPIN_ENV) else SPINCOUNT


def _whole(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ThreadPolicyError(f"{key}={value!r}: expected a whole number") from None
