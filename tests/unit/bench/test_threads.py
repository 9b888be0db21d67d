"""The bench's threads section, --quick sizes: each variant runs in a fresh process that got its thread settings
before torch loaded, the busy process is started and stopped, and the figures carry the targets."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from seqlab.bench import threads
from seqlab.bench.report import check_report, new_report
from seqlab.core import threads as policy

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # 16 child processes load torch and step a model
def test_quick_section_measures_both_variants_and_carries_the_targets(monkeypatch):
    monkeypatch.setattr(threads, "MODELS", ("binary_add",))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the caller's OpenMP settings are not the section's
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    section = threads.run(REPO / "params.yaml", repeats=1, seconds=0.05, warmup=1)
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before  # the busy loop is gone

    figures = section["figures"]
    assert set(figures) == {"binary_add busy/idle, policy", "binary_add busy/idle, torch defaults",
                            "binary_add idle, policy vs defaults"}
    assert figures["binary_add busy/idle, policy"]["target"] == threads.BUSY_TARGET == 0.45
    assert figures["binary_add idle, policy vs defaults"]["target"] == threads.IDLE_TARGET
    assert figures["binary_add busy/idle, torch defaults"]["target"] is None
    variants = section["settings"]["variants"]
    assert variants["policy"]["GOMP_SPINCOUNT"] is None  # the policy sets threads only (policy.SPINCOUNT is None)
    assert int(variants["policy"]["OMP_NUM_THREADS"]) == policy.cores()  # where the tuner starts
    assert variants["policy"]["MKL_CBWR"] == "AUTO,STRICT"
    assert variants["torch defaults"]["GOMP_SPINCOUNT"] is None
    assert variants["torch defaults"]["OMP_NUM_THREADS"] is None and variants["torch defaults"]["MKL_CBWR"] is None
    chosen = section["settings"]["threads_chosen"]
    assert set(chosen) == {f"binary_add {v} {load}" for v in threads.VARIANTS for load in ("idle", "busy")}
    for (policy_run,) in (chosen["binary_add policy idle"], chosen["binary_add policy busy"]):
        assert 1 <= policy_run["threads"] <= policy.cores()
        assert policy_run["settle_s"] >= 0  # the tuner decided once before the count began

    report = new_report(quick=True, repeats=1)
    for name in ("training", "rendering", "ocr", "compute", "pipeline"):  # the sections every report has
        report["sections"][name] = {"settings": {}, "figures": {"x": figures["binary_add busy/idle, policy"]}}
    report["sections"]["threads"] = section
    check_report(report)


def test_a_failing_step_names_the_model_and_variant(tmp_path):
    with pytest.raises(RuntimeError, match=r"kth step \(policy\) failed"):
        threads.measure(tmp_path / "missing.yaml", "kth", "policy", busy=False, seconds=0.01, warmup=0)
