"""The onnxruntime session every seqlab ONNX model runs in (predict, the export check, the bench)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import torch


def new_session(model: bytes | str | Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session on `model` (bytes or a file), `threads` intra-op threads (default: torch's)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: no warnings about initializers on stderr
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
