"""onnxruntime behind the calls predict makes: `seqlab predict --engine onnxruntime` and the bench.

An `OnnxModel` is called like the torch model it was exported from (tensors in, tensors out), so the
task's own code reads the images, batches them and decodes the outputs: both engines answer through
the same `Task.answers`, and only the network in between differs.

A session runs with graph optimisation level ALL, sequential execution and as many intra-op threads as
torch uses (the bench compares them on equal threads). An ONNX file is refused, in one line, when it is
not a seqlab export, is for another task, was exported from another checkpoint than the one beside it,
or reads another charset than expected (`open_onnx`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import nn

from seqlab.core.errors import CheckpointError
from seqlab.core.registry import task_class
from seqlab.core.task import Task
from seqlab.export.session import new_session


class OnnxModel(nn.Module):
    """An exported seqlab model on onnxruntime, called like the torch model: CPU tensors in and out."""

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # Graph inputs are the forward arguments in order; an argument the graph does not use is absent.
        from seqlab.export.onnx import OCR_SIGNATURE, SEQUENCE_SIGNATURE

        names = OCR_SIGNATURE.inputs if "images" in self.input_names else SEQUENCE_SIGNATURE.inputs
        feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True) if n in self.input_names}
        outputs = tuple(torch.from_numpy(o) for o in self.session.run(None, feed))
        return outputs[0] if len(outputs) == 1 else outputs


def open_onnx(path: str | Path, task_name: str, *, checkpoint_digest: str | None = None,
              charset: str | None = None, name: str | None = None,
              threads: int | None = None) -> tuple[Task, OnnxModel, dict[str, Any]]:
    """(task, model, the checkpoint config it was exported from) of a seqlab ONNX file, after checking it."""
    from seqlab.export import onnx as spec

    shown = name or str(path)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{shown}: ONNX model not found (export it first: dvc repro, or seqlab export)")
    try:
        session = new_session(path, threads)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds for foreign or damaged files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{shown}: not a readable ONNX model ({detail})") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get(spec.METADATA_FORMAT) != spec.FORMAT:
        raise CheckpointError(f"{shown}: not a seqlab ONNX export (no {spec.METADATA_FORMAT} metadata)")
    if props.get(spec.METADATA_TASK) != task_name:
        raise CheckpointError(f"{shown}: ONNX model is for task {props.get(spec.METADATA_TASK)!r}, not {task_name!r}")
    if checkpoint_digest is not None and props.get(spec.METADATA_CHECKPOINT) != checkpoint_digest:
        raise CheckpointError(f"{shown}: exported from another checkpoint than the one beside it "
                              f"(re-export: dvc repro, or seqlab export {task_name})")
    config = json.loads(props[spec.METADATA_CONFIG])
    theirs = config.get("meta", {}).get("charset")
    if charset is not None and theirs != charset:
        raise CheckpointError(f"{shown}: ONNX model reads charset {theirs!r}, not {charset!r}")
    try:
        task = task_class(task_name).from_checkpoint(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{shown}: unusable model config in its metadata ({type(exc).__name__}: {exc})") from None
    return task, OnnxModel(session), config


def load_for_predict(model: Path, task_name: str, *, name: str | None = None) -> tuple[Task, OnnxModel, dict[str, Any]]:
    """The onnxruntime model predict runs for `model`: an .onnx file as it is; a checkpoint through the .onnx
    export beside it (refused when exported from another checkpoint), or exported now when there is none."""
    from seqlab.core.checkpoint import file_digest
    from seqlab.export.onnx import export_checkpoint

    if model.suffix == ".onnx":
        return open_onnx(model, task_name, name=name)
    beside = model.with_suffix(".onnx")
    if beside.is_file() and name is None:
        digest = file_digest(model) if model.is_file() else None  # a deployment may ship the .onnx alone
        return open_onnx(beside, task_name, checkpoint_digest=digest)
    with tempfile.TemporaryDirectory(prefix="seqlab-onnx-") as tmp:
        out = Path(tmp) / "model.onnx"
        export_checkpoint(model, task_name, out, name=name)
        return open_onnx(out, task_name, name=name)  # the session holds the graph; the file may go
