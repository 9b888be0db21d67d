"""docs/development.md "Adding a task", kept true: a task defined here (its module: this file), one registry entry and
its params.yaml section, and nothing else, goes through the generic machinery as the `seqlab` command runs
it in a stage: validate, generate, train (the real loop, MLflow run and model included), evaluate (eval.json,
the champion rule with the task's own headline metric), predict and the MLflow model's input example.

The toy task, `first`: read a digit sequence, output its first digit (seq2one, like kth with k=1).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from seqlab import cli
from seqlab.core import registry
from seqlab.core.sections import PositiveInt, RecurrentModelConfig, Section, TaskSection, TrainConfig
from seqlab.core.storage import Arrays
from seqlab.tasks.sequence.common import (
    PaddedSplit,
    SequenceBatch,
    SequenceClassifier,
    SequenceTask,
    unflatten,
)

ROOT = Path(__file__).resolve().parents[2]

# --- the task's own module(s): its params section and its Task class -------------------------------------


class FirstDataConfig(Section):
    min_len: PositiveInt
    max_len: PositiveInt
    generalization_max_len: PositiveInt
    n_train: PositiveInt
    n_val: PositiveInt
    n_test: PositiveInt
    n_generalization: PositiveInt


class FirstConfig(TaskSection):
    data: FirstDataConfig
    model: RecurrentModelConfig
    train: TrainConfig


class FirstTask(SequenceTask):
    name = "first"
    input_size = 10
    eval_batch_size = 256
    headline = "accuracy"
    headline_metric, headline_mode = "test.accuracy", "max"
    group_column, range_unit = "length", "len"
    plot_title, plot_ylabel = "first: accuracy by length", "accuracy"

    @classmethod
    def length_range(cls, data: FirstDataConfig) -> tuple[int, int, int]:
        return data.min_len, data.max_len, data.generalization_max_len

    @classmethod
    def make_split(cls, rng: np.random.Generator, split: str, lo: int, hi: int, n: int,
                   data: FirstDataConfig) -> dict[str, np.ndarray]:
        lengths = rng.integers(lo, hi + 1, size=n).astype(np.int32)
        digits = rng.integers(0, 10, size=int(lengths.sum())).astype(np.uint8)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return {"digits": digits, "lengths": lengths, "targets": digits[starts].astype(np.int64)}

    def padded(self, arrays: Arrays) -> PaddedSplit:
        lengths = arrays["lengths"].astype(np.int64)
        return PaddedSplit(x=torch.from_numpy(unflatten(arrays["digits"], lengths).astype(np.int64)),
                           lengths=torch.from_numpy(lengths), y=torch.from_numpy(arrays["targets"]),
                           group=torch.from_numpy(lengths))

    def encode_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x, 10).float()

    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        return SequenceClassifier(self.recurrence(model), input_size=10, num_classes=10)

    def loss(self, model: nn.Module, batch: SequenceBatch) -> torch.Tensor:
        return F.cross_entropy(model(batch.x, batch.lengths), batch.y)

    def score_batch(self, logits: torch.Tensor, batch: SequenceBatch) -> tuple[float, dict[str, torch.Tensor]]:
        return F.cross_entropy(logits, batch.y, reduction="sum").item(), {"accuracy": logits.argmax(1) == batch.y}

    def encode_line(self, line: str, meta: Mapping[str, Any]) -> torch.Tensor:
        return self.encode_inputs(torch.tensor([int(c) for c in line.split()]))

    def format_answer(self, output: torch.Tensor) -> str:
        return str(output.argmax().item())

    def input_example(self, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {"input": ["7 1 2"]}


# --- the registry entry and the params section -------------------------------------------------------------


@pytest.fixture
def first_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The entry registered (for this test only) in a scratch repository whose params.yaml has the section."""
    monkeypatch.setitem(registry._REGISTRY, "first", registry.TaskEntry(
        "first", f"{__name__}:FirstTask", f"{__name__}:FirstConfig", f"{__name__}:FirstTask.generate"))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["first"] = {
        "data": {"min_len": 2, "max_len": 5, "generalization_max_len": 8, "n_train": 512, "n_val": 64, "n_test": 64,
                 "n_generalization": 64},
        "model": {"cell": "gru", "hidden_size": 16, "num_layers": 1},
        "train": {**raw["kth"]["train"], "epochs": 2, "batch_size": 64, "device": "cpu"},
    }
    (tmp_path / ".git").mkdir()  # the repository root: the MLflow store and resume state go here
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.slow  # trains (2 epochs of 512 sequences) and logs an MLflow model: ~10-20 s on 2 cores
def test_a_new_task_runs_through_every_stage(first_task: Path, capsys: pytest.CaptureFixture[str]):
    assert "first" in registry.task_names()
    for argv in (["validate"], ["generate", "first"], ["train", "first"], ["evaluate", "first"]):
        assert cli.main(argv) == 0, argv
    err = capsys.readouterr().err
    assert "[first] accuracy by split" in err  # the headline the task declares
    assert "seqlab-first version 1: test.accuracy=" in err and "now @champion" in err  # the champion rule
    metrics = (first_task / "metrics" / "first" / "eval.json").read_text()
    assert '"generalization"' in metrics and (first_task / "models" / "first.pt").is_file()

    from seqlab.core.checkpoint import load_model
    from seqlab.tracking.mlflow_model import answers_frame, input_example, signature

    task, model, ckpt = load_model(first_task / "models" / "first.pt", "first")
    out = io.StringIO()
    assert task.predict(model, ckpt["config"]["meta"], ["3 1 4"], out, io.StringIO()) == 0
    assert out.getvalue().strip().isdigit()
    frame = input_example(task, ckpt["config"]["meta"])
    assert signature(FirstTask).inputs.input_names() == ["input"]
    assert list(answers_frame(task, model, ckpt["config"]["meta"], frame).columns) == ["text", "error"]


def test_a_new_task_section_is_validated_with_the_rest(first_task: Path, capsys: pytest.CaptureFixture[str]):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["first"]["data"]["min_len"] = 0
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    assert cli.main(["validate"]) == 1
    assert "first.data.min_len must be >= 1 (got 0)" in capsys.readouterr().err
