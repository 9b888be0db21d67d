"""scripts/queue_parallel.py: the stage's learning-rate key, and a finished queue's status read per experiment.
(The timing itself needs an idle machine and minutes: docs/threads.md says how to run it.)"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support import REPO


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("queue_parallel", REPO / "scripts" / "queue_parallel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lr_key_follows_the_stage_names_of_dvc_yaml():
    qp = _load()
    assert qp.lr_key("train@kth") == "kth.train.lr"
    assert qp.lr_key("ocr-train@crnn") == "ocr.crnn.train.lr"
    with pytest.raises(SystemExit, match="expected train@TASK"):
        qp.lr_key("evaluate@kth")


def test_an_experiment_succeeded_only_on_its_own_success_line():
    qp = _load()
    status = ("Task     Name       Created    Status\n"
              "1a2b3c4  r0-j2-0    10:00 AM   Success\n"
              "5d6e7f8  r0-j2-1    10:00 AM   Failed\n")
    assert qp._succeeded(status, "r0-j2-0")
    assert not qp._succeeded(status, "r0-j2-1") and not qp._succeeded(status, "r0-j2-2")
