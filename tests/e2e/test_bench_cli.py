"""`seqlab bench --quick` end to end: every section runs into a temporary report of the documented shape,
with the expected figures and targets (the arithmetic of a figure is tests/unit/bench/test_report.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.bench.pipeline import trivial_pipeline
from seqlab.bench.report import SECTIONS, check_report
from tests.support import REPO


@pytest.mark.e2e
def test_quick_bench_writes_a_consistent_report(tmp_path: Path) -> None:
    project = trivial_pipeline(tmp_path / "project")  # stands in for the repository, whose repro may not be a no-op
    out = tmp_path / "out" / "bench.json"
    # cwd without models/: the OCR speed figure uses an untrained CRNN and the CER figure says why it is skipped.
    result = subprocess.run([sys.executable, "-m", "seqlab.cli", "--params", str(REPO / "params.yaml"), "bench",
                             "--quick", "--out", str(out), "--project", str(project)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    check_report(report)

    assert report["quick"] is True and report["repeats"] == 1
    assert sorted(report["sections"]) == sorted(SECTIONS)
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch_threads"] >= 1
    measured = {(section, name): fig for section, body in report["sections"].items()
                for name, fig in body["figures"].items() if "skipped" not in fig}
    expected = {("training", "kth"), ("training", "binary_add"), ("rendering", "2 workers vs 1"),
                ("rendering", "vs trdg command line"), ("ocr", "words/s"), ("compute", "CRNN step vs sgemm"),
                ("pipeline", "no-op dvc repro")}
    assert expected <= set(measured)
    assert report["sections"]["ocr"]["figures"]["CER"]["skipped"].startswith("no trained model")
    assert measured[("training", "kth")]["target"] == 100 and measured[("rendering", "2 workers vs 1")]["target"] == 1.8
    printed = result.stdout
    assert "training: binary_add" in printed and "pipeline: no-op dvc repro" in printed
