"""The ONNX export as an MLflow model (`mlflow.onnx`) in the run that trained the checkpoint: `onnx` beside
the torch pyfunc `model`, loadable and servable with mlflow, onnxruntime and numpy only (no torch).

It is the network alone: inputs and outputs are the graph's tensors (seqlab.export.onnx documents them),
fed as a dict of arrays (`{"images": ..., "widths": ...}`; `{"inputs": {...}}` in a request to `mlflow
models serve`). The charset that turns OCR classes into text (class i + 1 = character i, 0 = the CTC
blank) is in the model's metadata (`seqlab.config`), as in the ONNX file's own metadata_props.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACT_PATH = "onnx"  # runs:/<run id>/onnx
REQUIREMENTS = ("onnx", "onnxruntime", "numpy")
EXAMPLE_WIDTH = 64  # pixel columns (OCR) or steps (sequences) of the logged input example


def input_example(path: Path) -> dict[str, np.ndarray]:
    """A one-sample input of the graph at `path`, built from its declared input shapes."""
    import onnx

    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(path)).graph.input}
    if "images" in inputs:
        height = inputs["images"][2]
        return {"images": np.zeros((1, 1, height, EXAMPLE_WIDTH), np.float32),
                "widths": np.array([EXAMPLE_WIDTH], np.int64)}
    example = {"x": np.zeros((1, EXAMPLE_WIDTH, inputs["x"][2]), np.float32)}
    if "lengths" in inputs:
        example["lengths"] = np.array([EXAMPLE_WIDTH], np.int64)
    return example


def signature(path: Path) -> Any:
    """The MLflow signature of the graph at `path`: every input and output as a tensor of its ONNX dtype, dynamic
    axes as -1. The scoring server converts JSON requests to these dtypes (JSON numbers alone would arrive as
    int64 or float64, which onnxruntime refuses)."""
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    graph = onnx.load(str(path)).graph

    def specs(values: Any) -> Schema:
        return Schema([TensorSpec(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type),
                                  tuple(d.dim_value if d.HasField("dim_value") else -1
                                        for d in v.type.tensor_type.shape.dim), v.name) for v in values])

    return ModelSignature(inputs=specs(graph.input), outputs=specs(graph.output))


def log_onnx_model(run_id: str, path: Path) -> str:
    """Log the ONNX file at `path` as the MLflow model `onnx` of run `run_id`, leaving the run's status and end
    time as they are; return the logged model's id."""
    import onnx

    from seqlab.export.onnx import METADATA_CONFIG, METADATA_MODEL_ID
    from seqlab.tracking.runs import configure_mlflow, file_models_under

    configure_mlflow()
    import mlflow.onnx

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    metadata = {"seqlab_model_id": props[METADATA_MODEL_ID], "seqlab_config": json.loads(props[METADATA_CONFIG])}
    file_models_under(run_id)  # the training run stays finished, with its own duration
    info = mlflow.onnx.log_model(proto, name=ARTIFACT_PATH, run_id=run_id, input_example=input_example(path),
                                 signature=signature(path),
                                 pip_requirements=[f"{n}=={version(n)}" for n in REQUIREMENTS],
                                 metadata=metadata, save_as_external_data=False,
                                 onnx_execution_providers=execution_providers(),
                                 onnx_session_options={"intra_op_num_threads": 2, "execution_mode": "sequential",
                                                       "graph_optimization_level": 99})
    return str(info.model_id)


def execution_providers() -> list[str]:
    """The onnxruntime providers the model declares: MLflow's default (CUDA, then CPU) less what this
    onnxruntime build lacks, so logging on a CPU-only machine does not warn that CUDA is missing."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def attach_to_run(task_name: str, checkpoint: Path, path: Path) -> None:
    """Log `path` into the MLflow run that trained `checkpoint` (found by its digest), when the store has it."""
    from seqlab.core.checkpoint import MODEL_TAG, file_digest
    from seqlab.tracking.runs import experiment_name, find_run

    run_id = find_run(experiment_name(task_name), MODEL_TAG, file_digest(checkpoint))
    if run_id is None:  # e.g. a model restored from DVC's cache whose run lives in another store
        print(f"note: no MLflow run in this store trained {checkpoint}; the ONNX model is in {path} only",
              file=sys.stderr)
        return
    log_onnx_model(run_id, path)
    print(f"logged {path} as the MLflow model runs:/{run_id}/{ARTIFACT_PATH}", file=sys.stderr)
