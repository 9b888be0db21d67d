"""`seqlab bench --quick` end to end: every section runs into a temporary report of the documented shape,
with the expected figures and targets (the arithmetic of a figure is tests/unit/bench/test_report.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from seqlab.bench.pipeline import same_shape_pipeline, stale_stages, trivial_pipeline
from seqlab.bench.report import SECTIONS, check_report
from tests.support import REPO


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
                ("pipeline", "no-op dvc repro"), ("pipeline", "no-op dvc repro vs same shape"),
                *(("threads", f"{model} {which}") for model in ("kth", "binary_add", "ocr-bilstm", "ocr-crnn")
                  for which in ("busy/idle, policy", "busy/idle, torch defaults", "idle, policy vs defaults"))}
    assert expected <= set(measured)
    assert report["sections"]["ocr"]["figures"]["CER"]["skipped"].startswith("no trained model")
    assert measured[("training", "kth")]["target"] == 100 and measured[("rendering", "2 workers vs 1")]["target"] == 1.8
    assert measured[("threads", "ocr-crnn busy/idle, policy")]["target"] == 0.45
    assert measured[("pipeline", "no-op dvc repro")]["target"] == 2.5
    printed = result.stdout
    assert "training: binary_add" in printed and "pipeline: no-op dvc repro" in printed


def test_same_shape_pipeline_mirrors_the_projects_stages_and_edges(tmp_path: Path) -> None:
    project = tmp_path / "project"
    trivial_pipeline(project)
    (project / "params.yaml").write_text("seed: 1\nsize: 3\n")
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  make:\n    cmd: echo a > a.txt\n    deps: [params.yaml]\n    params: [seed]\n    outs: [a.txt]\n"
        "  use-x:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt, params.yaml]\n    params: [seed, size]\n"
        "    outs: [b.txt]\n")
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=project, check=True, capture_output=True)

    shape = same_shape_pipeline(project, tmp_path / "shape")
    stages = yaml.safe_load((shape / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["make", "use_x"]
    made, used = stages["make"], stages["use_x"]
    assert len(made["deps"]) == 1 and made["params"] == ["seed"] and len(made["outs"]) == 1
    assert used["params"] == ["seed", "size"]
    assert made["outs"][0] in used["deps"]  # the edge make -> use-x survives
    assert made["deps"][0] in used["deps"]  # a shared dep stays one file
    assert stale_stages(shape) == []  # reproduced once: a repro of it is a no-op
