"""`seqlab export`: a checkpoint as models/<id>.onnx, checked against torch before it is written.

The graph is the torch model itself, traced by torch's TorchScript exporter (`dynamo=False`: it exports
nn.LSTM as one ONNX LSTM node and handles the dynamic axes below; the dynamo exporter needs onnxscript and
unrolls nothing better). Inputs and outputs keep the models' own conventions:

    OCR (crnn, bilstm)   images float32 (batch, 1, height, width), widths int64 (batch,)
                         -> log_probs float32 (frames, batch, classes), lengths int64 (batch,)
    kth                  x float32 (batch, steps, 10), lengths int64 (batch,) -> logits (batch, 10)
    binary_add           x float32 (batch, steps, 2) -> logits (batch, steps)   (lengths is unused, so absent)

batch, width and steps are dynamic axes. One formulation differs from torch's default export: the
exporter writes `aten::floor_divide` as a truncating division (torch's "deprecated behaviour"), which
turns the models' ceiling division `-(-width // 4)` into a floor for every width that is not a multiple
of 4, so samples of a mixed-width batch read past their last valid step. The export maps it to a true
floor division (`floor_division`); the models, their weights and checkpoints are untouched. The
PaddedBiLSTM's per-sample reversal is a GatherElements with a computed index and exports as it is.

The file records what it came from in its metadata_props (METADATA_* below): the checkpoint's sha256
and config (task, variant, charset...), the opset. Before the file is written, `verify` runs torch and
onnxruntime on batches of mixed widths/lengths other than the traced one and refuses the export when a
logit differs by more than TOLERANCE.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqlab.core.checkpoint import file_digest, load_model
from seqlab.core.errors import SeqlabError
from seqlab.core.storage import atomic_path
from seqlab.core.task import Task

OPSET = 17
TOLERANCE = 1e-4  # max abs difference of a logit (log-prob) between torch and onnxruntime
FORMAT = "seqlab-onnx/1"
METADATA_FORMAT = "seqlab.format"
METADATA_TASK = "seqlab.task"
METADATA_MODEL_ID = "seqlab.model_id"
METADATA_CONFIG = "seqlab.config"  # the checkpoint's config dict as JSON: predict needs nothing else
METADATA_CHECKPOINT = "seqlab.checkpoint_sha256"
METADATA_OPSET = "seqlab.opset"


class ExportError(SeqlabError):
    """A checkpoint that cannot be exported, or whose export does not answer like torch; one line."""


@dataclass(frozen=True)
class Signature:
    """Names and dynamic axes of a model's graph inputs and outputs."""

    inputs: tuple[str, str]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


OCR_SIGNATURE = Signature(("images", "widths"), ("log_probs", "lengths"),
                          {"images": {0: "batch", 3: "width"}, "widths": {0: "batch"},
                           "log_probs": {0: "frames", 1: "batch"}, "lengths": {0: "batch"}})
SEQUENCE_SIGNATURE = Signature(("x", "lengths"), ("logits",),
                               {"x": {0: "batch", 1: "steps"}, "lengths": {0: "batch"},
                                "logits": {0: "batch", 1: "steps"}})


def signature(model: nn.Module) -> Signature:
    """The graph signature of a seqlab model, from its forward's argument names (images/widths: OCR)."""
    names = tuple(inspect.signature(model.forward).parameters)
    return OCR_SIGNATURE if names[:1] == ("images",) else SEQUENCE_SIGNATURE


def example_batches(model: nn.Module, meta: dict[str, Any], input_size: int | None) -> list[tuple[torch.Tensor, ...]]:
    """Inputs to trace (the first) and to verify (the others): mixed widths or lengths in one batch, padding
    zero as collate and the sequence batches have it, and a batch of one."""
    gen = torch.Generator().manual_seed(0)
    batches: list[tuple[torch.Tensor, ...]] = []
    if signature(model) is OCR_SIGNATURE:
        height = int(meta["height"])
        shapes = [[96, 61, 16], [203, 150, 33, 90, 17], [40]]
        for widths in shapes:
            wpad = -(-max(widths) // 8) * 8
            images = torch.rand(len(widths), 1, height, wpad, generator=gen)
            cols = torch.arange(wpad)
            images *= (cols[None, :] < torch.tensor(widths)[:, None]).float()[:, None, None, :]
            batches.append((images, torch.tensor(widths, dtype=torch.long)))
        return batches
    assert input_size is not None
    for lengths in ([7, 3, 1], [12, 5, 1, 9], [2]):
        x = torch.rand(len(lengths), max(lengths), input_size, generator=gen)
        x *= (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).float()[:, :, None]
        batches.append((x, torch.tensor(lengths, dtype=torch.long)))
    return batches


@contextlib.contextmanager
def floor_division() -> Iterator[None]:
    """Export `aten::floor_divide` as a floor, not a truncation (see the module docstring)."""
    from torch.onnx._internal.torchscript_exporter import symbolic_opset9

    torch.onnx.register_custom_op_symbolic("aten::floor_divide", symbolic_opset9._floor_divide, OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::floor_divide", OPSET)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_abs_diff: float
    batches: int  # verification batches compared

    def summary(self) -> str:
        return (f"wrote {self.path} (opset {OPSET}); onnxruntime vs torch on {self.batches} mixed-size batches: "
                f"max abs logit difference {self.max_abs_diff:.1e} (limit {TOLERANCE:g})")


def export_checkpoint(checkpoint: Path, task_name: str, out: Path, *, name: str | None = None) -> ExportReport:
    """Export the model of `checkpoint` to `out`, verified against torch; ExportError names what failed."""
    shown = name or str(checkpoint)
    task, model, ckpt = load_model(checkpoint, task_name, name=name)
    meta = ckpt["config"]["meta"]
    batches = example_batches(model, meta, getattr(task, "input_size", None))
    data = to_onnx(model, batches[0], shown)
    data = with_metadata(data, task, ckpt["config"], file_digest(checkpoint))
    diff = verify(model, data, batches[1:], shown)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(data)
    return ExportReport(out, diff, len(batches) - 1)


def to_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], shown: str) -> bytes:
    """The ONNX bytes of `model` traced on `example`; a failure names the layer that could not be exported."""
    sig = signature(model)
    axes = {k: v for k, v in sig.dynamic_axes.items() if k in sig.inputs + sig.outputs}
    buffer = io.BytesIO()
    # Quiet: tracer warnings about Python bools of shapes (forward's input checks), and the graph dump the
    # exporter's C++ side prints on stdout when it fails (predict's answers go to stdout).
    with _LayerTracker(model) as tracker, floor_division(), warnings.catch_warnings(), _stdout_silenced():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, buffer,  # type: ignore[arg-type]  # a file object works too
                              input_names=list(sig.inputs), output_names=list(sig.outputs),
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; all become one line
            reason = _first_line(exc)
            layer = tracker.failed or _layer_running(model, example, _aten_op(reason))
            where = f"layer {layer}" if layer else "the model"
            raise ExportError(f"{shown}: cannot export to ONNX opset {OPSET}: {where}: {reason}") from None
    return buffer.getvalue()


def with_metadata(data: bytes, task: Task, config: dict[str, Any], digest: str) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    props = {METADATA_FORMAT: FORMAT, METADATA_TASK: task.name, METADATA_MODEL_ID: task.model_id,
             METADATA_CONFIG: json.dumps(config, sort_keys=True), METADATA_CHECKPOINT: digest,
             METADATA_OPSET: str(OPSET)}
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "seqlab"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def verify(model: nn.Module, data: bytes, batches: list[tuple[torch.Tensor, ...]], shown: str) -> float:
    """Max abs difference of every output between torch and onnxruntime on `batches`; ExportError above
    TOLERANCE, or when an integer output (OCR lengths) differs at all."""
    from seqlab.export.session import new_session

    session = new_session(data)
    wanted = {i.name for i in session.get_inputs()}
    names = signature(model).inputs
    worst = 0.0
    for batch in batches:
        with torch.no_grad():
            expected = model(*batch)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {n: t.numpy() for n, t in zip(names, batch, strict=True) if n in wanted})
        for want, have in zip(expected, got, strict=True):
            if want.shape != have.shape:
                raise ExportError(f"{shown}: the ONNX graph gives shape {have.shape} where torch gives "
                                  f"{tuple(want.shape)} (batch shape {tuple(batch[0].shape)})")
            diff = float(np.abs(want.numpy().astype(np.float64) - have.astype(np.float64)).max(initial=0.0))
            exact = not want.dtype.is_floating_point
            if (exact and diff) or diff > TOLERANCE:
                raise ExportError(f"{shown}: the ONNX graph differs from torch by {diff:.2e} (limit "
                                  f"{0 if exact else TOLERANCE:g}) on a batch of shape {tuple(batch[0].shape)}")
            worst = max(worst, diff)
    return worst


# --- naming the layer that failed ---------------------------------------------------------------------

class _LayerTracker:
    """While active, knows which submodule's forward is running; `failed`: the innermost one an exception
    left (an error raised while tracing)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.stack: list[str] = []
        self.failed: str | None = None
        self.handles: list[Any] = []

    def __enter__(self) -> _LayerTracker:
        for name, module in self.model.named_modules():
            if not name:
                continue
            label = f"{name} ({type(module).__name__})"
            self.handles.append(module.register_forward_pre_hook(self._push(label)))
            self.handles.append(module.register_forward_hook(self._pop))
        return self

    def _push(self, label: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            self.stack.append(label)
        return hook

    def _pop(self, *_: object) -> None:
        self.stack.pop()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None and self.stack:
            self.failed = self.stack[-1]
        for handle in self.handles:
            handle.remove()


def _aten_op(reason: str) -> str | None:
    """'foo' from an exporter message naming 'aten::foo'."""
    start = reason.find("aten::")
    if start < 0:
        return None
    name = reason[start + 6:]
    end = next((i for i, c in enumerate(name) if not (c.isalnum() or c == "_")), len(name))
    return name[:end] or None


def _layer_running(model: nn.Module, example: tuple[torch.Tensor, ...], op: str | None) -> str | None:
    """The innermost submodule that calls torch function `op` in a forward pass of `example` (an exporter
    error after tracing names the op, not the layer)."""
    if op is None:
        return None
    from torch.overrides import TorchFunctionMode

    found: list[str] = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if not found and getattr(func, "__name__", "") == op and tracker.stack:
                found.append(tracker.stack[-1])
            return func(*args, **(kwargs or {}))

    with _LayerTracker(model) as tracker, Spy(), torch.no_grad(), contextlib.suppress(Exception):
        model(*example)
    return found[0] if found else None


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """File descriptor 1 goes to /dev/null meanwhile (C++ prints bypass sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
