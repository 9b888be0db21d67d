"""ONNX export: every task's model answers on onnxruntime what it answers on torch.

Each task's tiny model (kth and binary_add trained for a few hundred steps in memory, the OCR models
untrained) is saved as a checkpoint, exported, and compared on batches that mix lengths or widths: max abs
logit difference <= 1e-4 and identical decoded answers through the task's own predict path. Bad input:
a layer that does not export is named, a file from another task or charset is refused, a stale export
beside its checkpoint is refused. The MLflow model of an export loads and predicts without torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.core.checkpoint import load_model, save_checkpoint
from seqlab.core.errors import CheckpointError
from seqlab.core.registry import task_class
from seqlab.export.onnx import TOLERANCE, ExportError, export_checkpoint, to_onnx
from seqlab.export.runtime import load_for_predict, open_onnx
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.sequence.common import SequenceTask, iterate_batches
from seqlab.training.loop import train_step
from tests.support import REPO, documented_serve_example, free_port, load_raw_params, served

CHARSET = "abcdefghijklmnopqrstuvwxyz0123456789"
OCR_MODELS = {"crnn": {"channels": [8, 16], "hidden_size": 16, "num_layers": 1, "downsample": 4, "pool": "stride",
                       "frames_per_step": 2, "dropout": 0.0},
              "bilstm": {"hidden_size": 16, "num_layers": 2, "projection": 16, "stride": 4, "frames_per_step": 1,
                         "dropout": 0.0}}


def _checkpoint(path: Path, task: str, variant: str | None, model_args: dict, meta: dict, model: nn.Module,
                train: dict | None = None) -> Path:
    config = {"task": task, "variant": variant, "seed": 0, "model": model_args, "train": train or {}, "meta": meta}
    save_checkpoint(path, {"task": task, "variant": variant, "config": config, "model_state": model.state_dict(),
                           "meta": {}})
    return path


def _trained_sequence_checkpoint(tmp_path: Path, name: str) -> tuple[Path, SequenceTask, object]:
    """A kth or binary_add model of params.yaml's shape, trained 300 steps on an in-memory split; its test split."""
    params = load_raw_params()[name]
    task = task_class(name)()
    assert isinstance(task, SequenceTask)
    data_cfg = type("Data", (), params["data"])
    lo, hi, _ = task.length_range(data_cfg)
    rng = np.random.default_rng(0)
    from seqlab.core.storage import Arrays

    train = task.padded(Arrays(Path("<memory>"), task.make_split(rng, "train", lo, hi, 4000, data_cfg)))
    test = task.padded(Arrays(Path("<memory>"), task.make_split(rng, "test", lo, hi, 300, data_cfg)))
    torch.manual_seed(0)
    meta = {"k": params["data"]["k"], "max_len": hi} if name == "kth" else {"max_trained_bits": hi}
    model = task.build_model(task.model_section(params["model"]), meta).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    for _ in range(3):
        for batch in task.batches(train, 64, torch.Generator().manual_seed(0)):
            train_step(task, model, batch, optimizer, scheduler, 1.0)
    checkpoint = _checkpoint(tmp_path / f"{name}.pt", name, None, params["model"], meta, model,
                             {"loss": "bce"} if name == "binary_add" else {})
    return checkpoint, task, test


def _answers(name: str, logits: torch.Tensor, lengths: torch.Tensor) -> list:
    """Per sample: kth's digit (argmax), binary_add's sum bits at its valid steps."""
    if name == "kth":
        return logits.argmax(1).tolist()
    return [tuple((row[:n] > 0).tolist()) for row, n in zip(logits, lengths.tolist(), strict=True)]


@pytest.mark.parametrize("name", ["kth", "binary_add"])
def test_sequence_exports_answer_like_torch_on_the_test_split(tmp_path, one_thread, name):
    checkpoint, task, test = _trained_sequence_checkpoint(tmp_path, name)
    report = export_checkpoint(checkpoint, name, tmp_path / f"{name}.onnx")
    assert report.max_abs_diff <= TOLERANCE
    _, torch_model, ckpt = load_model(checkpoint, name)
    _, onnx_model, config = open_onnx(tmp_path / f"{name}.onnx", name)
    assert config == ckpt["config"]
    worst, want, got, right = 0.0, [], [], 0
    for batch in iterate_batches(test, 97, None, task.encode_inputs):  # mixed lengths in every batch
        with torch.no_grad():
            ours, theirs = torch_model(batch.x, batch.lengths), onnx_model(batch.x, batch.lengths)
        worst = max(worst, (ours - theirs).abs().max().item())
        want += _answers(name, ours, batch.lengths)
        got += _answers(name, theirs, batch.lengths)
        right += int(task.score_batch(ours, batch)[1][task.headline].sum())
    assert worst <= TOLERANCE
    assert got == want
    assert right > 0.3 * len(test)  # trained: the answers compared are not all the same guess
    lines = ["9 7 0 5 6 1 2", "3 1 4", "x"] if name == "kth" else ["1011 110", "1 1", "111111111111 1", "2 1"]
    meta = ckpt["config"]["meta"]
    assert list(task.answers(torch_model, meta, lines)) == list(task.answers(onnx_model, meta, lines))


@pytest.mark.parametrize("variant", ["crnn", "bilstm"])
def test_ocr_exports_read_like_torch_on_mixed_widths(tmp_path, one_thread, variant):
    torch.manual_seed(0)
    meta = {"charset": CHARSET, "height": 32}
    task = task_class("ocr")(variant, Charset.from_name(CHARSET))
    model = task.build_model(task.model_section(OCR_MODELS[variant]), meta)
    checkpoint = _checkpoint(tmp_path / f"ocr-{variant}.pt", "ocr", variant, OCR_MODELS[variant], meta, model)
    report = export_checkpoint(checkpoint, "ocr", tmp_path / f"ocr-{variant}.onnx")
    assert report.max_abs_diff <= TOLERANCE
    _, torch_model, _ = load_model(checkpoint, "ocr")
    _, onnx_model, _ = open_onnx(tmp_path / f"ocr-{variant}.onnx", "ocr")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, w), dtype=np.uint8) for w in (17, 250, 64, 121, 33, 90, 16, 301)]
    charset = Charset.from_name(CHARSET)
    want = CtcReader(torch_model, charset, torch.device("cpu")).read(images)
    assert CtcReader(onnx_model, charset, torch.device("cpu")).read(images) == want
    assert any(want)  # untrained, but it emits characters: the texts compared are not all empty


def test_a_layer_that_does_not_export_is_named_in_one_line():
    class Decompose(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svd(x)[1]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.odd = nn.Linear(4, 4), Decompose()

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.odd(self.lin(x))

    with pytest.raises(ExportError) as err:
        to_onnx(Net(), (torch.rand(2, 3, 4), torch.tensor([3, 2])), "odd.pt")
    message = str(err.value)
    assert "\n" not in message
    assert "layer odd (Decompose)" in message and "aten::linalg_svd" in message


@pytest.fixture(scope="module")
def kth_export(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("kth-onnx")
    torch.manual_seed(0)
    args = {"cell": "lstm", "hidden_size": 8, "num_layers": 1}
    task = task_class("kth")()
    checkpoint = _checkpoint(tmp / "kth.pt", "kth", None, args, {"k": 3, "max_len": 10}, task.build_model(task.model_section(args), {}))
    export_checkpoint(checkpoint, "kth", tmp / "kth.onnx")
    return checkpoint, tmp / "kth.onnx"


def test_an_export_of_another_task_or_charset_is_refused(kth_export, tmp_path):
    _, onnx_file = kth_export
    with pytest.raises(CheckpointError, match=r"kth\.onnx: ONNX model is for task 'kth', not 'ocr'$"):
        open_onnx(onnx_file, "ocr")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        open_onnx(kth_export[0], "kth")
    torch.manual_seed(0)
    meta = {"charset": CHARSET, "height": 32}
    ocr = task_class("ocr")("crnn", Charset.from_name(CHARSET))
    model = ocr.build_model(ocr.model_section(OCR_MODELS["crnn"]), meta)
    checkpoint = _checkpoint(tmp_path / "ocr-crnn.pt", "ocr", "crnn", OCR_MODELS["crnn"], meta, model)
    export_checkpoint(checkpoint, "ocr", tmp_path / "ocr-crnn.onnx")
    with pytest.raises(CheckpointError, match="ONNX model reads charset 'abc"):
        open_onnx(tmp_path / "ocr-crnn.onnx", "ocr", charset="0123456789")


def test_predict_refuses_an_export_made_from_another_checkpoint(kth_export, tmp_path):
    checkpoint, onnx_file = kth_export
    other = tmp_path / "kth.pt"
    other.write_bytes(checkpoint.read_bytes() + b"")  # same bytes: the export beside it is current
    (tmp_path / "kth.onnx").write_bytes(onnx_file.read_bytes())
    load_for_predict(other, "kth")
    torch.manual_seed(1)
    args = {"cell": "lstm", "hidden_size": 8, "num_layers": 1}
    kth = task_class("kth")()
    _checkpoint(other, "kth", None, args, {"k": 3, "max_len": 10}, kth.build_model(kth.model_section(args), {}))
    with pytest.raises(CheckpointError, match="exported from another checkpoint than the one beside it"):
        load_for_predict(other, "kth")


def test_predict_cli_with_onnxruntime_answers_like_torch(kth_export):
    checkpoint, _ = kth_export
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": str(Path(sys.executable).parent)}
    lines = "9 7 0 5 6\n1 2\n3 1 4 1 5 9 2 6\n"
    out = {engine: subprocess.run([sys.executable, "-m", "seqlab.cli", "predict", "kth", "--model", str(checkpoint),
                                   "--engine", engine], input=lines, capture_output=True, text=True, env=env)
           for engine in ("torch", "onnxruntime")}
    assert out["torch"].stdout == out["onnxruntime"].stdout
    assert out["torch"].stdout.count("\n") == 3 and out["onnxruntime"].returncode == 1  # "1 2": fewer than k


@pytest.mark.slow
def test_the_mlflow_onnx_model_loads_and_predicts_without_torch(kth_export, tmp_path):
    """Logged into a run of a local store, loaded by mlflow.pyfunc in a process where torch cannot be imported."""
    _, onnx_file = kth_export
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = f"""
import os, sys
os.environ["MLFLOW_TRACKING_URI"] = {uri!r}
from seqlab.tracking.runs import Tracker
from seqlab.export.mlflow_onnx import log_onnx_model
tracker = Tracker("seqlab-kth", run_name="onnx")
log_onnx_model(tracker.run_id, __import__("pathlib").Path({str(onnx_file)!r}))
tracker.finish()
print(tracker.run_id)
"""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "are unavailable in this onnxruntime build" not in proc.stderr  # declares only the providers it has
    run_id = proc.stdout.strip().splitlines()[-1]
    user = f"""
import json, sys
sys.modules["torch"] = None  # any import of torch fails
import mlflow, numpy as np
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model("runs:/{run_id}/onnx")
x = np.zeros((2, 6, 10), np.float32); x[0, :, 3] = 1; x[1, :4, 7] = 1
out = model.predict({{"x": x, "lengths": np.array([6, 4], np.int64)}})
print(json.dumps({{k: np.asarray(v).tolist() for k, v in out.items()}}))
"""
    proc = subprocess.run([sys.executable, "-c", user], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logits = np.array(json.loads(proc.stdout.strip().splitlines()[-1])["logits"])
    _, onnx_model, _ = open_onnx(onnx_file, "kth")
    x = torch.zeros(2, 6, 10)
    x[0, :, 3] = 1
    x[1, :4, 7] = 1
    assert np.abs(logits - onnx_model(x, torch.tensor([6, 4])).numpy()).max() == 0

    # docs/models-and-serving.md's serving lines, on this store and a free port: the served logits are onnxruntime's
    serve, (curl,) = documented_serve_example(1)
    port = free_port()
    serve = serve.replace("$PWD", str(tmp_path)).replace("<run id>", run_id).replace("5002", str(port))
    with served(serve, tmp_path, {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}, port):
        answer = subprocess.run(["bash", "-c", curl.replace("5002", str(port))], capture_output=True, text=True,
                                check=True).stdout
    served_logits = np.array(json.loads(answer)["predictions"]["logits"])
    x = torch.zeros(1, 3, 10)
    x[0, [0, 1, 2], [9, 7, 0]] = 1
    assert np.abs(served_logits - onnx_model(x, torch.tensor([3])).numpy()).max() < 1e-6
