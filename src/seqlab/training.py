"""The one training loop every task and variant goes through.

Batched training with AdamW, optional gradient clipping and a per-step learning-rate schedule,
validation after each epoch, early stopping on the task's monitored metric, and a resumable
checkpoint after every epoch (model, optimizer, scheduler, RNG states, history, MLflow run id).
A killed stage resumes from its last epoch and ends with the same result as an uninterrupted run:
each epoch's shuffle comes from a generator seeded by (seed, epoch), and the global RNG state is
restored for dropout. Single process today; the loop keeps rank-0-only side effects in one place
(`_is_main`) so a torchrun/DDP launcher can slot in.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqlab import paths
from seqlab.checkpoint import MODEL_TAG, file_digest, load_checkpoint, save_checkpoint
from seqlab.plots import line_plot, write_csv
from seqlab.sections import RunSection
from seqlab.seeding import derive_seed, rng_state, seed_everything, set_rng_state
from seqlab.storage import write_json
from seqlab.tasks.base import Task
from seqlab.tracking import Tracker, check_tracking_server, run_tags


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from seqlab.errors import SeqlabError

        raise SeqlabError("train.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def _is_main() -> bool:
    return True  # rank 0 under a future DDP launcher


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


def train(task: Task, seed: int, section: RunSection) -> dict[str, Any]:
    """Train `task` as `section` says on its train split, select on val, write model, metrics and plots;
    return the summary. The checkpoint keeps the run's config as plain dicts (model: constructor args)."""
    cfg = section.train
    check_tracking_server()  # fail fast, before loading data or spending time on training
    device = pick_device(cfg.device)
    seed_everything(seed)

    train_data, val_data = task.load_split("train"), task.load_split("val")
    meta = task.data_meta(train_data)
    model_args = section.model.model_dump()
    model = task.build_model(model_args, meta).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = task.num_batches(train_data, cfg.batch_size)
    scheduler = make_scheduler(optimizer, cfg.scheduler, steps_per_epoch * cfg.epochs)

    config = {"task": task.name, "variant": task.variant, "seed": seed, "model": model_args,
              "train": cfg.model_dump(), "meta": meta}
    data_files = sorted(task.data_dir.glob("*.npz"))
    # Keyed by the whole section too: what the checkpoint's config leaves out (OCR's augmentation) still
    # changes the run, and a resume file of other settings must not be picked up.
    key = _fingerprint([config, section.model_dump()], data_files)
    resume_path = paths.state_dir() / "resume" / f"{task.model_id}-{key}.pt"

    state: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0,
                             "best_state": None, "run_id": None}
    if resume_path.exists():
        ckpt = load_checkpoint(resume_path, task.name)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        set_rng_state(ckpt["rng_state"])
        state = ckpt["loop_state"]
        print(f"[{task.model_id}] resuming after epoch {state['epoch']} from {resume_path}", file=sys.stderr)

    tracker = None
    if _is_main():
        tracker = Tracker(f"seqlab-{task.model_id}", run_id=state["run_id"], run_name=_run_name(task),
                          params={"seed": seed, **section.model_dump()}, tags=run_tags(f"train@{task.model_id}"))
        state["run_id"] = tracker.run_id

    started = time.perf_counter()
    try:
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if state["bad_epochs"] >= cfg.patience:
                break  # resumed after an early stop: an uninterrupted run stopped here too
            t0 = time.perf_counter()
            model.train()
            gen = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
            total, count, samples = 0.0, 0, 0
            bar = tqdm(task.batches(train_data, cfg.batch_size, gen), total=steps_per_epoch, leave=False,
                       desc=f"{task.model_id} epoch {epoch}/{cfg.epochs}", mininterval=1.0, file=sys.stderr)
            for batch in bar:
                batch = batch.to(device)
                loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                total += loss.item()
                count += 1
                samples += batch.size
            train_seconds = time.perf_counter() - t0
            model.eval()
            with torch.no_grad():
                val = task.validation_metrics(model, val_data, device)
            record = {"epoch": epoch, "train_loss": total / max(count, 1), **val,
                      "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": time.perf_counter() - t0,
                      "train_samples_per_s": samples / train_seconds if samples else None}
            state["history"].append(record)
            value = val[task.monitor]
            if _improved(value, state["best"], task.monitor_mode):
                state.update(best=value, best_epoch=epoch, bad_epochs=0,
                             best_state=copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}))
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            print(f"[{task.model_id}] epoch {epoch}: " + ", ".join(
                f"{k}={v:.4g}" for k, v in record.items() if k != "epoch" and isinstance(v, float)), file=sys.stderr)
            if tracker:
                tracker.log_metrics({k: v for k, v in record.items() if k != "epoch" and v is not None}, step=epoch)
            save_checkpoint(resume_path, {
                "task": task.name, "variant": task.variant, "config": config,
                "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(), "rng_state": rng_state(), "loop_state": state,
            })
            if state["bad_epochs"] >= cfg.patience:
                print(f"[{task.model_id}] early stop: no {task.monitor} improvement for {cfg.patience} epochs",
                      file=sys.stderr)
                break
    except BaseException:
        if tracker:  # a kill -9 never gets here; the run stays RUNNING and is resumed next time
            tracker.finish("KILLED" if not isinstance(sys.exc_info()[1], Exception) else "FAILED")
        raise

    model.load_state_dict(state["best_state"])
    best = next(r for r in state["history"] if r["epoch"] == state["best_epoch"])
    summary = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "train_seconds": round(sum(r["epoch_seconds"] for r in state["history"]), 3),
               **{k: v for k, v in best.items() if k.startswith("val_")},
               "parameters": sum(p.numel() for p in model.parameters())}
    if _is_main():
        _write_outputs(task, model, config, state, summary, tracker)
    resume_path.unlink(missing_ok=True)
    print(f"[{task.model_id}] done in {time.perf_counter() - started:.1f}s: best epoch {state['best_epoch']}, "
          f"{task.monitor}={state['best']:.4g}", file=sys.stderr)
    return summary


def _run_name(task: Task) -> str:
    import os

    return os.environ.get("DVC_EXP_NAME") or f"{task.model_id}-workspace"


def _write_outputs(task: Task, model: torch.nn.Module, config: dict, state: dict, summary: dict,
                   tracker: Tracker | None) -> None:
    model_file = paths.model_path(task.model_id)
    save_checkpoint(model_file, {
        "task": task.name, "variant": task.variant, "config": config,
        "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
        "meta": {"best_epoch": state["best_epoch"]},  # no run id: same params must give the same bytes
    })
    out = paths.metrics_dir(task.model_id)
    write_json(out / "train.json", summary)
    history = [{k: v for k, v in r.items() if k not in ("epoch_seconds", "train_samples_per_s")}
               for r in state["history"]]
    write_csv(out / "history.csv", history)
    loss_keys = [k for k in history[0] if k.endswith("loss")]
    line_plot(out / "history.png", history, "epoch", loss_keys, f"{task.model_id}: loss per epoch", "loss", logy=True)
    if tracker:
        tracker.set_tags({MODEL_TAG: file_digest(model_file)})  # how evaluate finds this run
        tracker.log_metrics({f"final_{k}": v for k, v in summary.items() if k != "parameters"})
        tracker.log_metrics({"parameters": summary["parameters"]})
        for f in (model_file, out / "history.csv", out / "history.png"):
            tracker.log_artifact(f)
        tracker.finish()
