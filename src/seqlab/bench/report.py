"""The shape of metrics/bench.json, built and checked here and nowhere else.

A report is ``{"schema", "timestamp", "quick", "repeats", "machine", "sections"}``; each of the seven
sections (a report from before `inference` or `threads` existed lacks them) is ``{"settings": {...}, "figures": {name: figure}}``. A measured figure is

    {"ours": spread, "baseline": spread, "ratio": spread, "unit", "ours_label", "baseline_label",
     "better": "higher" | "lower", "target": float | None, "met": bool | None}

where a spread is ``{"values": [one per repeat], "median", "min", "max"}``, ``ratio.values[i]`` is
``ours.values[i] / baseline.values[i]`` (the two were measured in the same repeat, one after the
other) and ``met`` compares the median ratio with the target. A figure that could not be measured is
``{"skipped": "why"}``. :func:`figure` does the arithmetic (tests/unit/bench/test_report.py checks it);
:func:`check_report` checks the shape of a report read back (keys, one value per repeat, finite numbers),
not the arithmetic again.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any, Literal

SCHEMA = 1
SECTIONS = ("training", "rendering", "ocr", "inference", "compute", "threads", "pipeline")
LATER_SECTIONS = ("inference", "threads")  # a report written before these sections existed is still valid without them
Better = Literal["higher", "lower"]
PACKAGES = ("torch", "numpy", "pillow", "trdg", "tesserocr", "dvc", "opencv-python-headless", "onnxruntime")


class ReportError(ValueError):
    """A bench report that does not have the documented shape."""


def spread(values: Sequence[float]) -> dict[str, Any]:
    """One repeat per value, with median and range."""
    if not values:
        raise ValueError("a figure needs at least one repeat")
    vals = [float(v) for v in values]
    return {"values": vals, "median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def figure(ours: Sequence[float], baseline: Sequence[float], *, unit: str, ours_label: str, baseline_label: str,
           better: Better = "higher", target: float | None = None) -> dict[str, Any]:
    """A measured comparison: per-repeat ratios ours / baseline, and whether the median ratio meets `target`."""
    if len(ours) != len(baseline):
        raise ValueError(f"{len(ours)} measurements of ours but {len(baseline)} of the baseline")
    ratio = spread([o / b for o, b in zip(ours, baseline, strict=True)])
    return {"ours": spread(ours), "baseline": spread(baseline), "ratio": ratio, "unit": unit,
            "ours_label": ours_label, "baseline_label": baseline_label, "better": better, "target": target,
            "met": _met(ratio["median"], better, target)}


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


def _met(median: float, better: str, target: float | None) -> bool | None:
    if target is None:
        return None
    return median >= target if better == "higher" else median <= target


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, torch threads, versions, load."""
    import torch  # here: scripts/results_table.py prints reports without loading torch

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "load_average_at_start": round(os.getloadavg()[0], 2)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def new_report(quick: bool, repeats: int) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"schema": SCHEMA, "timestamp": now, "quick": quick, "repeats": repeats, "machine": machine_info(),
            "sections": {}}


# --- checking ------------------------------------------------------------------------------------------

def check_report(report: dict[str, Any]) -> None:
    """Raise ReportError unless `report` has the documented shape."""
    for key in ("schema", "timestamp", "quick", "repeats", "machine", "sections"):
        _require(key in report, f"missing top-level key {key!r}")
    _require(report["schema"] == SCHEMA, f"schema {report['schema']!r}, expected {SCHEMA}")
    datetime.datetime.fromisoformat(report["timestamp"])
    for key in ("cpu_model", "cpu_count", "torch_threads", "versions"):
        _require(key in report["machine"], f"machine info lacks {key!r}")
    required = [s for s in SECTIONS if s not in LATER_SECTIONS]
    _require(set(required) <= set(report["sections"]) <= set(SECTIONS),
             f"sections {sorted(report['sections'])}, expected {sorted(SECTIONS)}")
    for section, body in report["sections"].items():
        _require(isinstance(body.get("settings"), dict), f"{section}: no settings")
        _require(bool(body.get("figures")), f"{section}: no figures")
        for name, fig in body["figures"].items():
            _check_figure(f"{section}.{name}", fig, report["repeats"])


def _check_figure(where: str, fig: dict[str, Any], repeats: int) -> None:
    if "skipped" in fig:
        _require(isinstance(fig["skipped"], str) and bool(fig["skipped"]), f"{where}: empty skip reason")
        return
    for key in ("ours", "baseline", "ratio", "unit", "ours_label", "baseline_label", "better", "target", "met"):
        _require(key in fig, f"{where}: missing {key!r}")
    _require(fig["better"] in ("higher", "lower"), f"{where}: better is {fig['better']!r}")
    for part in ("ours", "baseline", "ratio"):
        s = fig[part]
        _require(all(key in s for key in ("values", "median", "min", "max")), f"{where}.{part}: not a spread")
        _require(len(s["values"]) == repeats, f"{where}.{part}: {len(s['values'])} values for {repeats} repeats")
        _require(all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in s["values"]),
                 f"{where}.{part}: values must be positive finite numbers")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ReportError(message)


# --- the printed table ---------------------------------------------------------------------------------

def table(report: dict[str, Any]) -> list[str]:
    """Markdown rows: one per figure, ratio median with its range, each side's median, the target."""
    n = report["repeats"]
    lines = [f"| figure | ratio, median (min-max of {n}) | ours | baseline | target |", "|---|---|---|---|---|"]
    for section in (s for s in SECTIONS if s in report["sections"]):
        for name, fig in report["sections"][section]["figures"].items():
            if "skipped" in fig:
                lines.append(f"| {section}: {name} | skipped: {fig['skipped']} | | | |")
                continue
            r = fig["ratio"]
            target = "—" if fig["target"] is None else (
                f"{'≥' if fig['better'] == 'higher' else '≤'} {fig['target']:g}: {'met' if fig['met'] else 'NOT met'}")
            lines.append(f"| {section}: {name} | {_num(r['median'])} ({_num(r['min'])}-{_num(r['max'])}) "
                         f"| {fig['ours_label']}: {_num(fig['ours']['median'])} {fig['unit']} "
                         f"| {fig['baseline_label']}: {_num(fig['baseline']['median'])} {fig['unit']} | {target} |")
    return lines


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x >= 0.01 else f"{x:.2e}"
