"""Training throughput of the shared batched loop vs. the seed notebooks' batch-1, per-sample loop.

Same model, same data, same optimiser; prints samples/s for both and the ratio. Run from the repo
root after `dvc repro generate@kth generate@binary_add` (or the whole pipeline):

    .venv/bin/python benchmarks/bench_training.py [--threads N]

The batch-1 loop runs the same model on one unpadded sequence per optimiser step, as the seed
notebooks did; the batched loop is what `seqlab train` runs (padded batches of train.batch_size).
"""

from __future__ import annotations

import argparse
import time

import torch

from seqlab.config import load_params
from seqlab.tasks import task_class


def per_sample_loop(task, model, data, n: int) -> float:
    """The seed's style: one sample per step, Python-level loop over samples."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for batch in list(task.batches(data, 1, torch.Generator().manual_seed(0)))[:n]:
        loss = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def batched_epoch(task, model, data, batch_size: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for batch in task.batches(data, batch_size, torch.Generator().manual_seed(0)):
        loss = task.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(data) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params()
    print(f"torch threads: {torch.get_num_threads()}")
    print("| task | model params | batch-1 loop (samples/s) | batched loop (samples/s) | speed-up |")
    print("|---|---|---|---|---|")
    for name in ("kth", "binary_add"):
        section = params.run_section(name)
        task = task_class(name).for_training(section, None)
        data = task.load_split("train")
        model = task.build_model(section.model.model_dump(), task.data_meta(data))
        slow = per_sample_loop(task, model, data, 500)
        fast = batched_epoch(task, model, data, section.train.batch_size)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {n_params} | {slow:,.0f} | {fast:,.0f} | {fast / slow:.0f}x |")


if __name__ == "__main__":
    main()
