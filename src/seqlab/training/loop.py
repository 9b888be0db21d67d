"""The one training loop every task and variant goes through.

Batched training with AdamW, optional gradient clipping and a per-step learning-rate schedule,
validation after each epoch, early stopping on the task's monitored metric, and a resumable
checkpoint after every epoch (model, optimizer, scheduler, RNG states, history, MLflow run id).
A killed stage resumes from its last epoch and ends with the same result as an uninterrupted run:
each epoch's shuffle comes from a generator seeded by (seed, epoch), and the global RNG state is
restored for dropout.

One process, or several that share each step (`train.nproc`, seqlab.training.distributed: DDP under torchrun,
rank 0 alone validating, tracking and writing); on the CPU or a GPU, in fp32 or mixed precision
(`train.device`, `train.precision`, seqlab.training.devices).

A run may also stop on a CPU-time budget (fine-tuning's `minutes`): after the epoch that spends it, counted in
process CPU seconds (every thread) so that a busy machine's waiting does not count; the spent time is in the
loop state, so a resumed run goes on with what is left.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqlab.core import paths
from seqlab.core.checkpoint import MODEL_TAG, file_digest, load_checkpoint, save_checkpoint
from seqlab.core.plots import line_plot, write_csv
from seqlab.core.sections import RunSection, TrainConfig
from seqlab.core.seeding import derive_seed, rank_seed, rng_state, seed_everything, set_rng_state
from seqlab.core.storage import write_json
from seqlab.core.task import Task
from seqlab.tracking.runs import (
    MODEL_ID_TAG,
    Tracker,
    check_tracking_server,
    experiment_name,
    remember_training_run,
    run_name,
    run_tags,
)
from seqlab.training import distributed
from seqlab.training.devices import Precision, configure_cudnn, pick_device, pick_precision, to_device
from seqlab.training.thread_tuner import ThreadTuner, training_threads

# train.json, a metrics file of `dvc metrics show` (which prints a column per key of every metrics file): the
# model's size and its training time. The rest of the summary (epochs run, the best one and its validation
# figures) is in history.csv, a row per epoch, and in the MLflow run's final_* metrics.
TRAIN_METRICS = ("parameters", "train_seconds")
# What an epoch's record says about the machine, not the model: in the MLflow run, not in history.csv (which
# the same params must reproduce byte for byte).
MACHINE_FIELDS = ("epoch_seconds", "cpu_seconds", "train_samples_per_s", "threads")


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedules: constant, cosine decay with a short warm-up, or one-cycle."""
    warmup = max(1, min(200, total_steps // 20))
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(total_steps, 2), pct_start=0.15
        )

    def factor(step: int) -> float:
        if kind == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_step(task: Task, model: torch.nn.Module, batch: Any, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, grad_clip: float,
               precision: Precision | None = None, scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One optimisation step on one batch; returns its loss (`seqlab bench` times this same step).
    `precision`: the autocast of the forward pass and loss; `scaler`: fp16's gradient scaling."""
    with precision.autocast() if precision else contextlib.nullcontext():
        loss = task.loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clipping and the step see the true gradients
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        scaler.update()
    scheduler.step()
    return loss


def _fingerprint(obj: Any, files: list[Path]) -> str:
    h = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode())
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(partial(fh.read, 1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value < best - 1e-12 if mode == "min" else value > best + 1e-12


@dataclass
class LoopState:
    """Where the epoch loop is: what the resume checkpoint carries (as a dict, fields in this order) so that a
    killed run goes on where it stopped."""

    epoch: int = 0  # the last finished epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    best: float | None = None  # the best value of the task's monitored metric so far
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the last improvement
    best_state: dict[str, torch.Tensor] | None = None  # the best epoch's weights (rank 0 only)
    run_id: str | None = None  # the MLflow run, resumed with the loop

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: that deep-copies the weights


@dataclass
class Run:
    """Everything a training run set up before its first epoch: placement, data, model and optimisation."""

    task: Task
    seed: int
    cfg: TrainConfig
    world: distributed.World
    device: torch.device
    precision: Precision
    setup: dict[str, str]  # device, precision, world size, backend, threads, cudnn: tagged on the MLflow run
    train_data: Any
    val_data: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    batch_size: int  # per rank
    steps_per_epoch: int
    config: dict[str, Any]  # what the checkpoint keeps of the run (model: the model section's on-disk form)
    resume_path: Path
    tuner: ThreadTuner | None  # the CPU thread count, tuned by timing the steps (None: fixed)


def train(task: Task, seed: int, section: RunSection, cpu_budget_s: float | None = None) -> dict[str, Any]:
    """Train `task` as `section` says on its train split, select on val, write model, metrics and plots;
    return the summary. The checkpoint keeps the run's config as plain dicts (model: the model section's dump,
    which Task.model_section reads back).
    `cpu_budget_s`: stop after the epoch that brings the run's CPU seconds to it (None: epochs only)."""
    check_tracking_server()  # fail fast, before loading data or spending time on training
    run = _set_up(task, seed, section)
    state = _resume(run)
    # After the resume: DDP starts every rank from rank 0's weights.
    net = distributed.wrap(run.model, run.world, run.device)
    tracker = _start_tracking(run, state, section)
    started = time.perf_counter()
    try:
        for epoch in range(state.epoch + 1, run.cfg.epochs + 1):
            if state.bad_epochs >= run.cfg.patience or _budget_spent(state, cpu_budget_s):
                break  # resumed after an early stop: an uninterrupted run stopped here too
            record = _run_epoch(run, net, epoch)
            _select(run, state, record)
            if tracker:
                tracker.log_metrics({k: v for k, v in record.items() if k != "epoch" and v is not None}, step=epoch)
            _save_resume(run, state)
            if state.bad_epochs >= run.cfg.patience:
                if run.world.is_main:
                    print(f"[{task.model_id}] early stop: no {task.monitor} improvement for {run.cfg.patience} epochs",
                          file=sys.stderr)
                break
            if _budget_spent(state, cpu_budget_s):
                if run.world.is_main:
                    print(f"[{task.model_id}] CPU budget of {cpu_budget_s:.0f}s spent after epoch {epoch}",
                          file=sys.stderr)
                break
    except BaseException:
        if tracker:  # a kill -9 never gets here; the run stays RUNNING and is resumed next time
            # Best effort: when the tracking server is what failed, this fails too, and the error to report
            # is the first one (the run then stays RUNNING, and the rerun resumes it).
            with contextlib.suppress(Exception):
                tracker.finish("KILLED" if not isinstance(sys.exc_info()[1], Exception) else "FAILED")
        raise
    return _finish(run, state, tracker, started)


def _set_up(task: Task, seed: int, section: RunSection) -> Run:
    """Device and precision, seeds, the process group, data, model, optimizer and schedule, the checkpoint's
    config and the resume file's name (in this order: the model's initial weights come from the seeded RNG)."""
    cfg = section.train
    world = distributed.current_world()
    device = distributed.rank_device(pick_device(cfg.device), world)
    precision = pick_precision(cfg.precision, device)
    cudnn = configure_cudnn()
    seed_everything(rank_seed(seed, world.rank))
    distributed.start(world, device)

    train_data, val_data = task.load_split("train"), task.load_split("val")
    meta = task.data_meta(train_data)
    model = task.build_model(section.model, meta).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch_size = distributed.rank_batch_size(cfg.batch_size, world)  # cfg.batch_size is the global batch
    steps_per_epoch = distributed.steps_per_epoch(task.num_batches(train_data, batch_size), world, batch_size)
    scheduler = make_scheduler(optimizer, cfg.scheduler, steps_per_epoch * cfg.epochs)
    scaler = precision.scaler()

    # nproc and precision are recorded as what they came to (a multi-node torchrun sets the world size, `auto`
    # picks a precision), and only where they change the run: a single-process fp32 model keeps its bytes.
    config = {"task": task.name, "variant": task.variant, "seed": seed, "model": section.model.model_dump(),
              "train": cfg.model_dump(exclude={"nproc", "precision"}), "meta": meta}
    if world.size > 1:
        config["world_size"] = world.size
    if precision.dtype is not None:
        config["precision"] = precision.name
    data_files = sorted(task.data_dir.glob("*.npz"))
    # Keyed by the whole section too: what the checkpoint's config leaves out (OCR's augmentation) still
    # changes the run, and a resume file of other settings must not be picked up.
    key = _fingerprint([config, section.model_dump()], data_files)
    tuner = training_threads(task.training_threads, os.environ, world.size) if device.type == "cpu" else None
    setup = {"device": str(device), "precision": precision.name, "world_size": str(world.size),
             "backend": distributed.backend_name(world),
             "threads_per_rank": f"{torch.get_num_threads()}{' (tuned)' if tuner else ''}", **cudnn}
    return Run(task, seed, cfg, world, device, precision, setup, train_data, val_data, model, optimizer, scheduler,
               scaler, batch_size, steps_per_epoch, config, paths.state_dir() / "resume" / f"{task.model_id}-{key}.pt",
               tuner)


def _resume(run: Run) -> LoopState:
    """The loop state of the resume file, with model, optimizer, schedule, scaler and RNG restored; a fresh
    state when there is none."""
    if not run.resume_path.exists():
        return LoopState()
    ckpt = load_checkpoint(run.resume_path, run.task.name)
    run.model.load_state_dict(ckpt["model_state"])
    run.optimizer.load_state_dict(ckpt["optimizer_state"])
    run.scheduler.load_state_dict(ckpt["scheduler_state"])
    set_rng_state(ckpt["rank_rng_states"][run.world.rank] if run.world.size > 1 else ckpt["rng_state"])
    if run.scaler is not None:
        run.scaler.load_state_dict(ckpt["scaler_state"])
    state = LoopState(**ckpt["loop_state"])
    if run.world.is_main:
        print(f"[{run.task.model_id}] resuming after epoch {state.epoch} from {run.resume_path}", file=sys.stderr)
    return state


def _start_tracking(run: Run, state: LoopState, section: RunSection) -> Tracker | None:
    """Rank 0's MLflow run (the resumed one, if any; its id goes into the loop state); None on other ranks."""
    if not run.world.is_main:
        return None
    task = run.task
    print(f"[{task.model_id}] " + ", ".join(f"{k} {v}" for k, v in run.setup.items() if not k.startswith("cudnn")),
          file=sys.stderr)
    tracker = Tracker(experiment_name(task.name), run_id=state.run_id, run_name=run_name(task.model_id, task.variant),
                      params={"seed": run.seed, **section.model_dump()},
                      tags={**run_tags(f"train@{task.model_id}"), MODEL_ID_TAG: task.model_id,
                            **{f"seqlab.{k}": v for k, v in run.setup.items()}})
    state.run_id = tracker.run_id
    return tracker


def _budget_spent(state: LoopState, cpu_budget_s: float | None) -> bool:
    return cpu_budget_s is not None and sum(r["cpu_seconds"] for r in state.history) >= cpu_budget_s


def _run_epoch(run: Run, net: torch.nn.Module, epoch: int) -> dict[str, Any]:
    """One epoch of training on every rank, then validation on rank 0; the epoch's history record."""
    task, world, device, cfg = run.task, run.world, run.device, run.cfg
    t0, cpu0 = time.perf_counter(), time.process_time()
    run.model.train()
    gen = torch.Generator().manual_seed(derive_seed(run.seed, "epoch", epoch))
    loss_sum, count, samples = torch.zeros((), dtype=torch.float64, device=device), 0, 0
    batches = islice(task.rank_batches(run.train_data, run.batch_size, gen, world.rank, world.size), run.steps_per_epoch)
    bar = tqdm(batches, total=run.steps_per_epoch, leave=False, desc=f"{task.model_id} epoch {epoch}/{cfg.epochs}",
               mininterval=1.0, file=sys.stderr, disable=not world.is_main)
    tuner, steps_before = run.tuner, dict(run.tuner.steps) if run.tuner else {}
    if tuner:
        tuner.pause()  # the time since the last epoch's last step was validation's
    for batch in bar:
        batch = to_device(batch, device)
        loss = train_step(task, net, batch, run.optimizer, run.scheduler, cfg.grad_clip, run.precision, run.scaler)
        loss_sum += loss.detach()  # summed where it is: reading it each step would wait for a GPU
        count += 1
        samples += batch.size
        if tuner:
            tuner.step_done()
    train_seconds = time.perf_counter() - t0
    threads = tuner.mean_threads(since=steps_before) if tuner else float(torch.get_num_threads())
    total, steps, seen = distributed.sum_over_ranks([loss_sum.item(), count, samples], world, device)
    run.model.eval()
    val = distributed.from_main(lambda: _validate(task, run.model, run.val_data, device, world), world)
    return {"epoch": epoch, "train_loss": total / max(steps, 1), **val,
            "lr": run.optimizer.param_groups[0]["lr"], "epoch_seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0, "train_samples_per_s": seen / train_seconds if seen else None,
            "threads": threads}



def _select(run: Run, state: LoopState, record: dict[str, Any]) -> None:
    """Record the epoch; keep its weights when the monitored metric improved, else count a bad epoch."""
    task, epoch = run.task, record["epoch"]
    state.history.append(record)
    value = record[task.monitor]
    if _improved(value, state.best, task.monitor_mode):
        state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
        state.best_state = copy.deepcopy({k: v.cpu() for k, v in run.model.state_dict().items()}) \
            if run.world.is_main else None
    else:
        state.bad_epochs += 1
    state.epoch = epoch
    if run.world.is_main:
        print(f"[{task.model_id}] epoch {epoch}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in record.items() if k != "epoch" and isinstance(v, float)), file=sys.stderr)


def _save_resume(run: Run, state: LoopState) -> None:
    """The resume checkpoint after an epoch (rank 0 writes it; every rank's RNG state goes in)."""
    rank_rng_states = distributed.gather(rng_state(), run.world)  # each rank's dropout goes on where it was
    if not run.world.is_main:
        return
    resume: dict[str, Any] = {
        "task": run.task.name, "variant": run.task.variant, "config": run.config,
        "model_state": run.model.state_dict(), "optimizer_state": run.optimizer.state_dict(),
        "scheduler_state": run.scheduler.state_dict(), "rng_state": rng_state(), "loop_state": state.as_dict()}
    if run.world.size > 1:
        resume["rank_rng_states"] = rank_rng_states
    if run.scaler is not None:
        resume["scaler_state"] = run.scaler.state_dict()
    save_checkpoint(run.resume_path, resume)


def _finish(run: Run, state: LoopState, tracker: Tracker | None, started: float) -> dict[str, Any]:
    """The best epoch's weights and summary; rank 0 writes the outputs and drops the resume file."""
    task, model, world = run.task, run.model, run.world
    if world.is_main and state.best_state is not None:  # rank 0 holds the best weights
        model.load_state_dict(state.best_state)
    best = next(r for r in state.history if r["epoch"] == state.best_epoch)
    summary = {"best_epoch": state.best_epoch, "epochs_run": state.epoch,
               "train_seconds": round(sum(r["epoch_seconds"] for r in state.history), 3),
               "cpu_seconds": round(sum(r["cpu_seconds"] for r in state.history), 3),
               **{k: v for k, v in best.items() if k.startswith("val_")},
               "parameters": sum(p.numel() for p in model.parameters())}
    if world.is_main:
        _write_outputs(task, model, run.config, state, summary, tracker)
        run.resume_path.unlink(missing_ok=True)
        print(f"[{task.model_id}] done in {time.perf_counter() - started:.1f}s: best epoch {state.best_epoch}, "
              f"{task.monitor}={state.best:.4g}", file=sys.stderr)
    distributed.stop(world)
    return summary


def _validate(task: Task, model: torch.nn.Module, data: Any, device: torch.device,
              world: distributed.World) -> dict[str, float]:
    with torch.no_grad(), distributed.borrowed_threads(world, device):
        return task.validation_metrics(model, data, device)


def _write_outputs(task: Task, model: torch.nn.Module, config: dict[str, Any], state: LoopState,
                   summary: dict[str, Any], tracker: Tracker | None) -> None:
    model_file = task.model_file
    save_checkpoint(model_file, {
        "task": task.name, "variant": task.variant, "config": config,
        "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
        "meta": {"best_epoch": state.best_epoch},  # no run id: same params must give the same bytes
    })
    out = paths.metrics_dir(task.model_id)
    write_json(out / "train.json", {k: summary[k] for k in TRAIN_METRICS})
    history = [{k: v for k, v in r.items() if k not in MACHINE_FIELDS} for r in state.history]
    write_csv(out / "history.csv", history)
    loss_keys = [k for k in history[0] if k.endswith("loss")]
    line_plot(out / "history.png", history, "epoch", loss_keys, f"{task.model_id}: loss per epoch", "loss", logy=True)
    if tracker:
        from seqlab.tracking.mlflow_model import log_model

        digest = file_digest(model_file)
        tracker.set_tags({MODEL_TAG: digest})  # how evaluate finds this run without the id below
        remember_training_run(task.model_id, digest, tracker.run_id)  # how evaluate gets this run's id
        tracker.log_metrics({f"final_{k}": v for k, v in summary.items() if k != "parameters"})
        tracker.log_metrics({"parameters": summary["parameters"]})
        for f in (out / "history.csv", out / "history.png"):
            tracker.log_artifact(f)
        if not task.reads_with_params:  # else the evaluate stage logs it, with the params and files it reads
            log_model(tracker.run_id, task, config["meta"], model_file)  # the checkpoint, as an MLflow model
        tracker.finish()
