"""Where a model trains and in what precision: the device (`train.device`), mixed precision
(`train.precision`), the cuDNN settings, and pinned host memory for batches bound for a GPU.

Nothing here assumes a GPU: on a machine without CUDA, `device: auto` is the CPU and `precision: auto` is
fp32, so one params.yaml runs on a laptop and on a CUDA box.

- precision `fp32`: no autocast. `bf16`: autocast to bfloat16, on CUDA or on a CPU; bf16 has fp32's exponent
  range, so gradients need no scaling. `fp16`: CUDA only, autocast to float16 with a GradScaler, since fp16's
  range flushes small gradients to zero. `auto`: bf16 where the GPU supports it, else fp16; fp32 on a CPU.
  Autocast keeps the ops that need it (log_softmax, the CTC loss) in fp32; parameters and optimizer state
  stay fp32 and validation runs in fp32, as evaluation does.
- cuDNN: `benchmark` off, because OCR batches change width from step to step and autotuning every new shape
  costs more than it saves; `deterministic` left at torch's default. Both are recorded on the MLflow run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from seqlab.core.errors import SeqlabError

if TYPE_CHECKING:
    from seqlab.core.task import Batch

B = TypeVar("B", bound="Batch")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SeqlabError("train.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: fp32) on one device type."""

    device_type: str  # "cuda" or "cpu", as torch.autocast names them
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler where the precision needs one (fp16), else None."""
        return torch.amp.GradScaler(self.device_type) if self.dtype == torch.float16 else None


def pick_precision(name: str, device: torch.device) -> Precision:
    """`train.precision` on `device`; a request the device cannot honour fails with one line, as
    `device: cuda` without a GPU does."""
    kind = device.type
    if name == "fp32" or (name == "auto" and kind != "cuda"):
        return Precision(kind)
    if name == "auto":
        return Precision(kind, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if name == "fp16" and kind != "cuda":
        raise SeqlabError(f"train.precision is 'fp16' but the model trains on the {kind.upper()} "
                          "(fp16 needs CUDA; use 'bf16', 'auto' or 'fp32')")
    if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise SeqlabError("train.precision is 'bf16' but this GPU has no bfloat16 support (use 'fp16' or 'auto')")
    if name == "bf16" and kind == "cpu" and not cpu_bf16_lstm():
        raise SeqlabError("train.precision is 'bf16' but this CPU has no bfloat16 LSTM kernel (oneDNN needs "
                          "AVX-512 for it; use 'fp32')")
    return Precision(kind, torch.bfloat16 if name == "bf16" else torch.float16)


@functools.cache
def cpu_bf16_lstm() -> bool:
    """Whether an LSTM runs under CPU bf16 autocast here. oneDNN's bf16 LSTM needs AVX-512; on an AVX2-only
    CPU (seen on an AMD EPYC of this project's machine kind) the first forward raises "could not create a
    primitive descriptor", so the request is refused before training starts."""
    lstm = torch.nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


def configure_cudnn() -> dict[str, str]:
    """Set the cuDNN flags a training run relies on; return them (and the library's version) for the run's record."""
    torch.backends.cudnn.benchmark = False
    cudnn = torch.backends.cudnn
    return {"cudnn.enabled": str(cudnn.enabled), "cudnn.benchmark": str(cudnn.benchmark),
            "cudnn.deterministic": str(cudnn.deterministic),
            "cudnn.version": str(cudnn.version() if cudnn.is_available() else None)}


def to_device(batch: B, device: torch.device) -> B:
    """`batch.to(device)`; bound for CUDA, through pinned host memory, so that the copy (the batches' `to`
    passes non_blocking=True) runs while the host prepares the next batch."""
    if device.type == "cuda" and dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        pinned = {f.name: value.pin_memory() for f in dataclasses.fields(batch)
                  if isinstance(value := getattr(batch, f.name), torch.Tensor)}
        batch = dataclasses.replace(batch, **pinned)
    return batch.to(device)
