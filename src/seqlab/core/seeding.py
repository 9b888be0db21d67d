"""One place that seeds every random number generator a stage touches."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(seed: int, *parts: str | int) -> int:
    """A stable sub-seed for a named purpose (split, epoch, worker), independent of call order."""
    return int(np.random.SeedSequence([seed, *(_as_int(p) for p in parts)]).generate_state(1)[0])


def rank_seed(seed: int, rank: int) -> int:
    """The seed of one training process (seqlab.training.distributed): rank 0 keeps the run's seed, so a single-process
    run is unchanged; the other ranks draw their own dropout from sub-seeds."""
    return seed if rank == 0 else derive_seed(seed, "rank", rank)


def _as_int(part: str | int) -> int:
    if isinstance(part, int):
        return part
    return int.from_bytes(part.encode("utf-8"), "little") % 2**63


def rng_state() -> dict[str, Any]:
    """RNG states as plain types and tensors, so they load with torch.load(weights_only=True)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout on a GPU draws from the CUDA generators, not the CPU one
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
