"""Data-parallel training over several processes (DistributedDataParallel), launched through torchrun.

`train.nproc: N` (N > 1) makes `seqlab train ...` a launcher: it runs torchrun's elastic agent in-process,
as `torchrun --standalone --nproc-per-node N -m seqlab.cli train ...` would, and the agent starts N copies
of the same command. A copy knows it is a rank by the LOCAL_RANK and WORLD_SIZE variables torchrun gives it,
and trains instead of launching again; so a multi-node `torchrun --nnodes ... --rdzv-endpoint ...` can run
the command directly (docs/scaling.md). `dvc repro` and `dvc exp run` stay the entry points.

How the work is shared, and why:
- `train.batch_size` stays the global batch: each of W ranks takes batch_size / W samples (rounded up) per
  step, so the steps per epoch, the schedule and the learning rate are a single process's, and so is the
  quality; W only changes how fast an epoch goes.
- Every rank draws the same epoch order (the loop's generator, seeded by (seed, epoch): re-seeded every
  epoch) and takes every W-th batch of it from its rank on, so the task's batching is kept (OCR's width
  buckets). Batches that would leave some rank without a step are dropped from that epoch (DDP needs the same
  number of steps everywhere): at most W-1 of them, different ones each epoch.
- gloo on a CPU, NCCL on CUDA with one GPU per local rank.
- Seeds: rank 0 keeps the run's seed, the others their own (seeding.rank_seed); the model starts from rank
  0's weights, which DDP broadcasts.
- Threads: torchrun would give every rank one (OMP_NUM_THREADS=1); a rank takes the cores it may run on
  divided by the ranks on its node, at least 1, or SEQLAB_THREADS_PER_RANK when set: the project's thread
  policy (seqlab.core.threads), which each rank's `seqlab.cli` entry point applies before torch loads.
- Rank 0 alone validates (the other ranks wait idle, so it borrows their threads meanwhile), logs to MLflow
  and writes checkpoints and outputs; the validation metrics are broadcast so that every rank takes the same
  early-stopping decision. A resume checkpoint keeps every rank's RNG state: kill -9 and rerun resumes as a
  single process does (ranks die with their launcher, so a killed stage leaves no rank training on).
- A rank that fails: torchrun stops the others and the launcher fails the stage with one line naming the
  rank and its error, exit code or signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from seqlab.core import threads
from seqlab.core.errors import SeqlabError

T = TypeVar("T")

# Before a rank's traceback is printed: time for torchrun to stop this rank if another one died first (the
# agent checks its workers every 0.1 s), so that the launcher's line stays the whole report of that failure.
TRACEBACK_HOLD_S = 2.0


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; World() is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_rank() -> bool:
    """Whether torchrun started this process as one of its workers (then it trains, never launches)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def current_world() -> World:
    if not is_rank():
        return World()
    env = os.environ
    return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]), int(env["LOCAL_WORLD_SIZE"]))


def threads_per_rank(local_size: int) -> int:
    """The threads the thread policy gives each of `local_size` ranks on this node."""
    return threads.choose({**os.environ, "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": str(local_size)}).threads


# --- the launcher ------------------------------------------------------------------------------------


def launch(nproc: int, argv: Sequence[str]) -> None:
    """Run `python -m seqlab.cli *argv` as `nproc` ranks on this machine, as `torchrun --standalone` does;
    raise SeqlabError (one line: the rank that failed first and how) when a rank fails."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    # Each rank's entry point applies the thread policy; this value only counts where the policy is off
    # (SEQLAB_THREAD_POLICY=off), since torchrun would give every rank 1 thread.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_rank(nproc)))
    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "seqlab.cli", *argv])
    # What torchrun's --standalone does: a private rendezvous on a free local port.
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    config, cmd, cmd_args = config_from_args(args)
    _quiet_agent_logs()
    try:
        elastic_launch(config, cmd)(*cmd_args)
    except ChildFailedError as exc:
        _end_rank_output()
        raise SeqlabError(_failure_line(exc, nproc)) from None
    except SignalException as exc:  # the launcher itself was told to stop; the agent stopped the ranks
        _end_rank_output()
        raise SeqlabError(f"training stopped by {signal.Signals(exc.sigval).name}") from None


def _end_rank_output() -> None:
    """End the line a dead rank left unfinished (its progress bar redraws with \r and no newline), so that
    the launcher's one-line error starts a line of its own."""
    sys.stderr.write("\n")
    sys.stderr.flush()


def _quiet_agent_logs() -> None:
    """The agent logs each worker it stops and the failure it saw, several lines each: our one line says it."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _failure_line(exc: Any, nproc: int) -> str:
    # The rank that failed on its own, not one the agent stopped afterwards with SIGTERM; then the earliest.
    rank, failure = min(exc.failures.items(),
                        key=lambda item: (item[1].exitcode == -signal.SIGTERM, item[1].timestamp, item[0]))
    message = failure.message.get("message") if isinstance(failure.message, dict) else None
    if message:
        how = message
    elif failure.exitcode < 0:
        how = f"killed by {failure.signal_name()}"
    else:
        how = f"exited with code {failure.exitcode}"
    return f"training rank {rank} of {nproc}: {how} (torchrun stopped the other ranks)"


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Around a rank's work: hand a SeqlabError to the launcher, which prints it once (not once per rank), and
    hold back another error's traceback a moment (see TRACEBACK_HOLD_S). Outside torchrun: nothing."""
    if not is_rank():
        yield
        return
    try:
        yield
    except SeqlabError as exc:
        if not _write_error_file(str(exc)):
            raise
        raise SystemExit(1) from None
    except Exception as exc:
        _write_error_file(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                          " (traceback above)")
        time.sleep(TRACEBACK_HOLD_S)
        raise


def _write_error_file(message: str) -> bool:
    """The failure record torchrun's agent reads back (its ErrorHandler's format); False without one."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return False
    with open(path, "w") as fh:
        json.dump({"message": {"message": message, "extraInfo": {"py_callstack": "",
                                                                 "timestamp": str(int(time.time()))}}}, fh)
    return True


# --- a rank ------------------------------------------------------------------------------------------


def rank_device(device: torch.device, world: World) -> torch.device:
    """The device of this rank: its own GPU on CUDA (one per local rank), else `device` itself."""
    if device.type != "cuda" or world.size == 1:
        return device
    if world.local_size > torch.cuda.device_count():
        raise SeqlabError(f"{world.local_size} ranks on this node but {torch.cuda.device_count()} GPUs "
                          "(NCCL needs one GPU per rank): lower train.nproc")
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


def start(world: World, device: torch.device) -> None:
    """Join the process group; nothing for a single process. (The thread policy sized the pool before torch loaded.)"""
    if world.size == 1:
        return
    _die_with_launcher()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _die_with_launcher() -> None:
    """torchrun starts each rank in its own session, so a kill -9 of the stage's process group would leave the
    ranks training on, unsupervised: a rank dies with its launcher. On Linux the kernel sends it SIGKILL when
    the launcher exits (PR_SET_PDEATHSIG, the launcher's main thread started it); elsewhere a thread watches
    for the rank being re-parented."""
    launcher = os.getppid()
    if _kill_me_with_parent():
        if os.getppid() != launcher:  # the launcher died before the request took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="seqlab-launcher-watch", daemon=True).start()


def _kill_me_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def backend_name(world: World) -> str:
    return dist.get_backend() if world.size > 1 and dist.is_initialized() else "none"


def rank_batch_size(batch_size: int, world: World) -> int:
    """Each rank's share of the global batch, rounded up."""
    return -(-batch_size // world.size)


def steps_per_epoch(batches: int, world: World, batch_size: int) -> int:
    """Steps each rank takes per epoch when the epoch has `batches` batches (of `batch_size`) in all."""
    steps = batches // world.size
    if steps == 0:
        raise SeqlabError(f"train.nproc {world.size} needs at least {world.size} batches of {batch_size} per epoch, "
                          f"the training split gives {batches}: lower train.nproc")
    return steps


def gather(obj: T, world: World) -> list[T] | None:
    """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
    if world.size == 1:
        return [obj]
    found: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(obj, found, dst=0)
    return found


def sum_over_ranks(values: Sequence[float], world: World, device: torch.device) -> list[float]:
    if world.size == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


@contextlib.contextmanager
def borrowed_threads(world: World, device: torch.device) -> Iterator[None]:
    """Rank 0 alone works (validation) while the node's other ranks wait: let it use their threads too."""
    if world.size == 1 or device.type != "cpu":
        yield
        return
    own = torch.get_num_threads()
    torch.set_num_threads(own * world.local_size)
    try:
        yield
    finally:
        torch.set_num_threads(own)



def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """What the training steps call: `model` under DDP (gradients averaged over the ranks), or `model` itself."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def from_main(compute: Callable[[], T], world: World) -> T:
    """`compute()` run on rank 0 alone, its result on every rank."""
    if world.size == 1:
        return compute()
    box = [compute() if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]  # rank 0's value, never None
