"""seqlab.bench.report: a figure's ratios, medians and target verdict follow from its measurements (checked
here, once); the report check refuses reports of the wrong shape. The quick suite end to end is
tests/e2e/test_bench_cli.py."""

from __future__ import annotations

import copy
import json

import pytest

from seqlab.bench.report import SECTIONS, ReportError, check_report, figure, new_report, skipped, table


def _report() -> dict:
    report = new_report(quick=False, repeats=3)
    fast = figure([300.0, 310.0, 290.0], [2.0, 3.0, 2.5], unit="samples/s", ours_label="a", baseline_label="b",
                  target=100.0)
    slow = figure([1.0, 1.2, 1.1], [0.5, 0.5, 0.6], unit="s", ours_label="a", baseline_label="b", better="lower")
    for section in SECTIONS:
        report["sections"][section] = {"settings": {}, "figures": {"fast": copy.deepcopy(fast),
                                                                   "slow": copy.deepcopy(slow)}}
    report["sections"]["ocr"]["figures"]["CER"] = skipped("no trained model")
    return report


def test_figure_ratios_medians_and_targets() -> None:
    fig = _report()["sections"]["training"]["figures"]["fast"]
    assert fig["ratio"]["values"] == [150.0, 310.0 / 3.0, 116.0]
    assert fig["ratio"]["median"] == 116.0 and fig["ratio"]["min"] == 310.0 / 3.0 and fig["met"] is True
    assert figure([1.0], [1.0], unit="x", ours_label="a", baseline_label="b", target=1.8)["met"] is False
    assert figure([1.0], [2.0], unit="s", ours_label="a", baseline_label="b", better="lower", target=0.6)["met"]
    with pytest.raises(ValueError):
        figure([1.0, 2.0], [1.0], unit="x", ours_label="a", baseline_label="b")


def test_check_accepts_a_consistent_report_and_prints_it() -> None:
    report = _report()
    check_report(report)
    check_report(json.loads(json.dumps(report, sort_keys=True)))  # as written to disk
    lines = table(report)
    assert len(lines) == 2 + 2 * len(SECTIONS) + 1
    assert any("≥ 100: met" in line for line in lines) and any("skipped: no trained model" in line for line in lines)


@pytest.mark.parametrize("tamper, message", [
    (lambda r: r["sections"]["training"]["figures"]["fast"]["ratio"].pop("median"), "not a spread"),
    (lambda r: r["sections"]["compute"]["figures"]["slow"]["ours"]["values"].pop(), "values for 3 repeats"),
    (lambda r: r["sections"]["compute"]["figures"]["slow"]["baseline"]["values"].__setitem__(0, float("nan")),
     "positive finite"),
    (lambda r: r["sections"].pop("pipeline"), "sections"),
    (lambda r: r["sections"]["ocr"]["figures"].update(CER={"skipped": ""}), "skip reason"),
    (lambda r: r["machine"].pop("cpu_model"), "cpu_model"),
    (lambda r: r["sections"]["ocr"]["figures"]["fast"].pop("target"), "target"),
])
def test_check_refuses_inconsistent_reports(tamper, message: str) -> None:
    report = _report()
    tamper(report)
    with pytest.raises(ReportError, match=message):
        check_report(report)
