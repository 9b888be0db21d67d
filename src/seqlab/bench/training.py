"""Training samples/s of the project's loop vs a faithful seed-style loop, for kth and binary_add.

Both sides train the same model (params.yaml's model section, same initial weights) with the same
optimizer (AdamW at the section's lr and weight decay) on the same in-memory training split, drawn
as the generate stage draws it. Ours is an epoch of `seqlab.training.loop.train_step` over
`task.batches` at the section's batch size, clipping and scheduler included; the seed style is what
the seed notebooks did: one Python iteration per sample, batch 1, each sequence unpadded, forward,
backward and step (no clipping, no schedule: the baseline gets the cheaper step).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.bench.report import figure
from seqlab.core.config import Params
from seqlab.core.registry import task_class
from seqlab.core.storage import Arrays
from seqlab.tasks.sequence.common import PaddedSplit, SequenceBatch, SequenceTask
from seqlab.training.loop import make_scheduler, train_step

TASKS = ("kth", "binary_add")
TARGET = 100.0  # x the seed loop's samples/s (issue 11)


def run(params: Params, repeats: int, samples: int, seed_samples: int) -> dict[str, Any]:
    """The training section: per task, `repeats` pairs of (our epoch over `samples`, seed loop over `seed_samples`)."""
    figures = {}
    for name in TASKS:
        section = params.section(name).run()
        task = task_class(name).for_training(section, None)
        assert isinstance(task, SequenceTask)
        data = _train_split(task, params.section(name).data, samples, params.seed)
        ours, seed_style = [], []
        for _ in range(repeats):
            ours.append(_batched_epoch(task, section, data, params.seed))
            seed_style.append(_seed_loop(task, section, data, seed_samples, params.seed))
        figures[name] = figure(ours, seed_style, unit="samples/s", ours_label="batched train_step",
                               baseline_label="seed-style batch-1 loop", target=TARGET)
    settings = {"samples": samples, "seed_loop_samples": seed_samples, "threads": torch.get_num_threads(),
                "batch_size": {name: params.section(name).run().train.batch_size for name in TASKS}}
    return {"settings": settings, "figures": figures}


def _train_split(task: SequenceTask, data_cfg: Any, n: int, seed: int) -> PaddedSplit:
    lo, hi, _ = task.length_range(data_cfg)
    arrays = task.make_split(np.random.default_rng(seed), "train", lo, hi, n, data_cfg)
    return task.padded(Arrays(Path("<in memory>"), arrays))


def _model(task: SequenceTask, section: Any, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # both loops start from the same weights
    return task.build_model(section.model, {}).train()


def _optimizer(model: torch.nn.Module, section: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=section.train.lr, weight_decay=section.train.weight_decay)


def _batched_epoch(task: SequenceTask, section: Any, data: PaddedSplit, seed: int) -> float:
    """Samples/s of one epoch of the training loop's step, batching included."""
    cfg = section.train
    model = _model(task, section, seed)
    optimizer = _optimizer(model, section)
    scheduler = make_scheduler(optimizer, cfg.scheduler, task.num_batches(data, cfg.batch_size))
    device = torch.device("cpu")
    start = time.perf_counter()
    for batch in task.batches(data, cfg.batch_size, torch.Generator().manual_seed(seed)):
        train_step(task, model, batch.to(device), optimizer, scheduler, cfg.grad_clip).item()
    return len(data) / (time.perf_counter() - start)


def _seed_loop(task: SequenceTask, section: Any, data: PaddedSplit, n: int, seed: int) -> float:
    """Samples/s of the seed notebooks' loop: one sample per optimizer step, one Python iteration each."""
    model = _model(task, section, seed)
    optimizer = _optimizer(model, section)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    start = time.perf_counter()
    for i in order:
        length = int(data.lengths[i])
        x = task.encode_inputs(data.x[i:i + 1, :length])
        y = data.y[i:i + 1, :length] if data.y.dim() > 1 else data.y[i:i + 1]
        loss = task.loss(model, SequenceBatch(x=x, lengths=data.lengths[i:i + 1], y=y, group=data.group[i:i + 1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return n / (time.perf_counter() - start)
