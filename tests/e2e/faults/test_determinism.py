"""Determinism: `dvc repro -f` twice on the same params gives the same dvc.lock hashes and the same metrics.

kth and binary_add: conftest's `pipeline_template` ran every stage once in a fresh repo (empty run-cache, so
like -f) in another directory; a clone runs `dvc repro -f` again. OCR (generate, both CTC variants,
Tesseract): `dvc repro -f` twice in one clone, with its models shrunk further. Each run must really execute
the stages (-f bypasses DVC's run-cache; checked), else the comparison would prove nothing.
Only wall-clock fields may differ (support.TIMING_FIELDS); a metrics file holding one is compared
as JSON without it instead of by hash.
"""

from __future__ import annotations

from tests.support import (
    clone_pipeline,
    lock_outs,
    read_json,
    read_params,
    run,
    without_timing,
    write_params,
)

SEQUENCE_TARGETS = ["evaluate@kth", "evaluate@binary_add"]
OCR_TARGETS = ["ocr-evaluate@bilstm", "ocr-evaluate@crnn", "ocr-tesseract"]


def _metrics(root, paths):
    return {p: read_json(root / p) for p in paths if p.endswith(".json")}


def _assert_same_run(first_lock, second_lock, first_metrics, second_metrics):
    assert first_lock.keys() == second_lock.keys()
    differing = {k for k in first_lock if first_lock[k] != second_lock[k]}
    timed = set()
    for key in differing:
        path = key.split(":", 1)[1]
        assert path in first_metrics, f"{key} differs between two runs with the same params"
        assert without_timing(first_metrics[path]) == without_timing(second_metrics[path]), path
        assert first_metrics[path] != without_timing(first_metrics[path]), f"{path} differs beyond timing"
        timed.add(path)
    for path in first_metrics:
        assert without_timing(first_metrics[path]) == without_timing(second_metrics[path]), path
    return timed


def _assert_all_ran(proc, targets):
    ran = {line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '")}
    trained = {t.replace("evaluate", "train") for t in targets if "evaluate" in t}
    assert set(targets) | trained <= ran, proc.stdout[-3000:]
    assert "is cached" not in proc.stdout


def _metric_paths(lock):
    return sorted({k.split(":", 1)[1] for k in lock if k.split(":", 1)[1].startswith("metrics/")})


def test_sequence_tasks_repro_twice_is_identical(pipeline_template, tmp_path_factory):
    root = clone_pipeline(pipeline_template, tmp_path_factory.mktemp("determinism") / "repo")  # holds the template's first run
    first_lock = {k: v for k, v in lock_outs(root).items() if "ocr" not in k}
    paths = _metric_paths(first_lock)
    first_metrics = _metrics(root, paths)
    _assert_all_ran(run(["dvc", "repro", "-f", *SEQUENCE_TARGETS], root), SEQUENCE_TARGETS)
    second_lock = {k: v for k, v in lock_outs(root).items() if "ocr" not in k}
    assert any(k.startswith("train@kth:models/") for k in second_lock)
    timed = _assert_same_run(first_lock, second_lock, first_metrics, _metrics(root, paths))
    assert timed <= {"metrics/kth/train.json", "metrics/binary_add/train.json"}, timed


def test_ocr_repro_twice_is_identical(pipeline_template, tmp_path_factory):
    root = clone_pipeline(pipeline_template, tmp_path_factory.mktemp("determinism-ocr") / "repo")
    params = read_params(root)
    params["ocr"]["bilstm"]["model"].update(hidden_size=16, num_layers=1, projection=16)
    params["ocr"]["crnn"]["model"].update(channels=[8, 16], hidden_size=16, num_layers=1)
    params["ocr"]["data"]["counts"] = {"train": 32, "val": 8, "test": 8, "test_heldout_fonts": 8, "test_lines": 4}
    write_params(root, params)
    _assert_all_ran(run(["dvc", "repro", "-f", *OCR_TARGETS], root), OCR_TARGETS)
    first_lock = {k: v for k, v in lock_outs(root).items() if "ocr" in k}
    assert {"ocr-generate:data/ocr", "ocr-train@crnn:models/ocr-crnn.pt"} <= first_lock.keys()
    paths = _metric_paths(first_lock)
    first_metrics = _metrics(root, paths)
    _assert_all_ran(run(["dvc", "repro", "-f", *OCR_TARGETS], root), OCR_TARGETS)
    second_lock = {k: v for k, v in lock_outs(root).items() if "ocr" in k}
    _assert_same_run(first_lock, second_lock, first_metrics, _metrics(root, paths))

