"""Distributed training (train.nproc, torchrun, DDP over gloo) and the GPU path (device, precision), on a CPU.

Device and precision selection with CUDA mocked, the per-rank thread count, the launcher's one
failure line, sharding (ranks interleave one epoch order, OCR's width buckets kept, only own batches built),
and the bf16 training step with and without a gradient scaler (CPU autocast stands in for CUDA's).
The runs under torchrun are tests/e2e/test_distributed.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqlab.core import threads
from seqlab.core.errors import SeqlabError
from seqlab.training import distributed
from seqlab.training.devices import Precision, configure_cudnn, pick_device, pick_precision

# --- device and precision ---------------------------------------------------------------------------


@pytest.fixture
def cuda(monkeypatch):
    """A machine with CUDA, as far as device and precision selection can tell."""
    state = SimpleNamespace(bf16=True, count=2, current=None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: state.bf16)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: state.count)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: setattr(state, "current", d))
    return state


def test_auto_device_and_precision_follow_cuda(cuda):
    device = pick_device("auto")
    assert device.type == "cuda"
    assert pick_precision("auto", device) == Precision("cuda", torch.bfloat16)
    cuda.bf16 = False
    assert pick_precision("auto", device) == Precision("cuda", torch.float16)
    assert pick_precision("auto", device).scaler() is not None  # fp16 scales its gradients
    assert pick_precision("fp32", device).dtype is None


def test_without_cuda_auto_is_cpu_and_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = pick_device("auto")
    assert device == torch.device("cpu")
    precision = pick_precision("auto", device)
    assert precision.dtype is None and precision.name == "fp32" and precision.scaler() is None
    import seqlab.training.devices as devices

    monkeypatch.setattr(devices, "cpu_bf16_lstm", lambda: True)  # a CPU with oneDNN's bf16 LSTM (AVX-512)
    assert pick_precision("bf16", device) == Precision("cpu", torch.bfloat16)  # CPU autocast has bf16
    with pytest.raises(SeqlabError, match="'fp16' but the model trains on the CPU"):
        pick_precision("fp16", device)
    with pytest.raises(SeqlabError, match="no CUDA device"):
        pick_device("cuda")


def test_bf16_request_on_a_gpu_without_it_fails(cuda):
    cuda.bf16 = False
    with pytest.raises(SeqlabError, match="no bfloat16 support"):
        pick_precision("bf16", torch.device("cuda"))


def test_cudnn_settings_are_set_and_reported():
    settings = configure_cudnn()
    assert settings["cudnn.benchmark"] == "False" and not torch.backends.cudnn.benchmark
    assert set(settings) == {"cudnn.enabled", "cudnn.benchmark", "cudnn.deterministic", "cudnn.version"}


def test_ranks_take_one_gpu_each(cuda):
    world = distributed.World(rank=3, size=4, local_rank=1, local_size=2)
    assert distributed.rank_device(torch.device("cuda"), world) == torch.device("cuda", 1)
    assert cuda.current == 1
    cuda.count = 1
    with pytest.raises(SeqlabError, match="2 ranks on this node but 1 GPUs"):
        distributed.rank_device(torch.device("cuda"), world)
    assert distributed.rank_device(torch.device("cpu"), world) == torch.device("cpu")


def test_threads_per_rank(monkeypatch):
    for name in (threads.THREADS_ENV, threads.RANK_THREADS_ENV, "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert distributed.threads_per_rank(4) == 4
    assert distributed.threads_per_rank(32) == 1
    monkeypatch.setenv(threads.RANK_THREADS_ENV, "3")
    assert distributed.threads_per_rank(4) == 3


def test_failure_line_names_the_rank_that_failed_first():
    def failure(exitcode: int, timestamp: int, message: object = "") -> SimpleNamespace:
        return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, message=message,
                               signal_name=lambda: signal.Signals(-exitcode).name)

    # rank 0 was stopped by the agent (SIGTERM) in the same second rank 1 was killed: rank 1 is the cause
    exc = SimpleNamespace(failures={0: failure(-signal.SIGTERM, 5), 1: failure(-signal.SIGKILL, 5)})
    assert distributed._failure_line(exc, 2) == "training rank 1 of 2: killed by SIGKILL (torchrun stopped the other ranks)"
    exc = SimpleNamespace(failures={1: failure(1, 5, {"message": "data/kth/train.npz: missing"})})
    assert "training rank 1 of 2: data/kth/train.npz: missing" in distributed._failure_line(exc, 2)
    exc = SimpleNamespace(failures={0: failure(3, 7)})
    assert "rank 0 of 2: exited with code 3" in distributed._failure_line(exc, 2)


# --- sharding --------------------------------------------------------------------------------------------


def _kth_split(n: int):
    from seqlab.core.storage import Arrays
    from seqlab.tasks.sequence.kth import KthTask

    task = KthTask()
    arrays = task.make_split(np.random.default_rng(0), "train", 3, 10, n, SimpleNamespace(k=2))
    return task, task.padded(Arrays(Path("<memory>"), arrays))


def test_rank_shards_interleave_one_epoch_order():
    task, data = _kth_split(100)
    world = distributed.World(size=2)
    half = distributed.rank_batch_size(32, world)
    steps = distributed.steps_per_epoch(task.num_batches(data, half), world, half)
    assert (half, steps) == (16, 3)  # 7 batches of 16 (the last one partial): one is left out of this epoch
    order = [b.y for b in task.batches(data, half, torch.Generator().manual_seed(5))]
    shards = [list(islice(task.rank_batches(data, half, torch.Generator().manual_seed(5), rank, 2), steps))
              for rank in (0, 1)]  # as the training loop takes them
    for rank, shard in enumerate(shards):
        assert len(shard) == steps
        assert all(torch.equal(b.y, order[rank + 2 * i]) for i, b in enumerate(shard))
    next_epoch = [b.y for b in islice(task.rank_batches(data, half, torch.Generator().manual_seed(6), 0, 2), steps)]
    assert not all(torch.equal(a, b) for a, b in zip(next_epoch, [b.y for b in shards[0]], strict=True))  # re-drawn


def test_too_many_ranks_for_the_data_fail_with_one_line():
    with pytest.raises(SeqlabError, match="train.nproc 4 needs at least 4 batches of 8 per epoch, the training "
                                          "split gives 3"):
        distributed.steps_per_epoch(3, distributed.World(size=4), 8)


def test_ocr_shards_build_only_their_batches_and_keep_width_buckets():
    from seqlab.tasks.ocr.data import OcrSplit
    from seqlab.tasks.ocr.recognizer.batching import iterate_batches

    rng = np.random.default_rng(0)
    images = [np.full((32, int(w)), 255, np.uint8) for w in rng.integers(20, 200, size=70)]
    data = OcrSplit.unlabelled(images)
    everything = [b.index.tolist() for b in iterate_batches(data, 8, torch.Generator().manual_seed(3))]
    shards = [[b.index.tolist() for b in iterate_batches(data, 8, torch.Generator().manual_seed(3), shard=(r, 3))]
              for r in range(3)]
    for rank, shard in enumerate(shards):
        assert shard == everything[rank::3]
    spread = np.mean([np.ptp(data.widths[idx]) for shard in shards for idx in shard])
    assert spread < np.ptp(data.widths) / 4  # still width buckets, not random batches


# --- the training step in mixed precision ---------------------------------------------------------------


def test_bf16_is_refused_in_one_line_on_a_cpu_without_bf16_lstm_kernels(monkeypatch):
    import seqlab.training.devices as devices

    monkeypatch.setattr(devices, "cpu_bf16_lstm", lambda: False)
    with pytest.raises(SeqlabError, match="no bfloat16 LSTM kernel"):
        pick_precision("bf16", torch.device("cpu"))
    assert pick_precision("fp32", torch.device("cpu")).dtype is None


@pytest.mark.parametrize("scaled", [False, True])
def test_mixed_precision_step_trains(scaled):
    """bf16 autocast (CPU's stands in for CUDA's) and the scaler's path: a finite loss, fp32 weights that move."""
    from seqlab.training.devices import cpu_bf16_lstm

    if not cpu_bf16_lstm():
        pytest.skip("this CPU has no bf16 LSTM kernel (oneDNN needs AVX-512); pick_precision refuses bf16 here")
    from seqlab.training.loop import make_scheduler, train_step

    task, data = _kth_split(64)
    torch.manual_seed(0)
    model = task.build_model(task.model_section({"cell": "lstm", "hidden_size": 16, "num_layers": 1}), {})
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = make_scheduler(optimizer, "constant", 4)
    scaler = torch.amp.GradScaler("cpu") if scaled else None
    for batch in task.batches(data, 32, torch.Generator().manual_seed(0)):
        loss = train_step(task, model, batch, optimizer, scheduler, 1.0, Precision("cpu", torch.bfloat16), scaler)
        assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


_LAUNCHER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1]])
time.sleep(600)
"""
_RANK = """
import os, sys, time
from seqlab.training.distributed import _die_with_launcher
_die_with_launcher()
print(os.getpid(), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_rank_dies_with_its_launcher():
    """kill -9 of the launcher (the stage's process) takes the rank with it: the kernel signals it, no polling."""
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _RANK], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        rank = int(launcher.stdout.readline())  # the rank has armed its death signal
        assert _alive(rank)
    finally:
        launcher.kill()  # SIGKILL: no handler of the launcher's runs
        launcher.wait()
    deadline = time.monotonic() + 60  # a bound for a hung test, not a timing claim
    while _alive(rank):
        assert time.monotonic() < deadline, f"rank {rank} outlived its launcher"
        time.sleep(0.05)
