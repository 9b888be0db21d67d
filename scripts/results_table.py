"""Print the results tables (markdown) from metrics/*.json, and keep the documents that show them equal to them.

    python scripts/results_table.py                     # print the tables
    python scripts/results_table.py --write README.md docs/results.md docs/benchmarks.md  # regenerate their blocks
    python scripts/results_table.py --check README.md docs/results.md docs/benchmarks.md  # exit 1 with a diff if stale
    python scripts/results_table.py --check ... --rev HEAD  # ... against the metrics committed at HEAD

A document holds any of three generated blocks, each between its markers: the summary (README.md: each model's
and reference engine's headline figures, from eval.json), the full results (docs/results.md) and the benchmark
table (docs/benchmarks.md, from metrics/bench.json).
Every figure comes from metrics/<id>/ (written by `dvc repro`): eval.json (the headline figures, what `dvc metrics
show` prints), splits.json (every figure of each test split), by_kind.csv, train.json
and history.csv (a row per epoch); from metrics/pipeline_times.json (written by scripts/timed_repro.py); and from
metrics/float-spread.json (written by scripts/float_spread.py: the float noise between two runs).
The targets and their thresholds are metrics/targets.yaml, and whether each is met is computed from the figures. A
missing file or split prints "—" instead of failing, so the tables can be printed while the pipeline is still being
rerun. tests/unit/scripts/test_readme_results.py runs `--check`: the documents must match the metrics in the working
tree or, after `make pipeline` retrained on another machine (float noise in the last digits: docs/results.md), the
metrics committed at HEAD, which are what the documents show.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seqlab.bench.report import check_report
from seqlab.bench.report import table as bench_table

ROOT = Path(__file__).resolve().parents[1]
METRICS = ROOT / "metrics"
SUMMARY_BEGIN, SUMMARY_END = "<!-- summary:begin -->", "<!-- summary:end -->"  # README.md
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"  # docs/results.md
BENCH_BEGIN, BENCH_END = "<!-- bench:begin -->", "<!-- bench:end -->"  # docs/benchmarks.md
DOCUMENTS = ("README.md", "docs/results.md", "docs/benchmarks.md")  # `make results` writes these (repository root)
BENCH = METRICS / "bench.json"  # written by `seqlab bench`
QUEUE = METRICS / "queue-parallel"  # written by scripts/queue_parallel.py --out
TARGETS = METRICS / "targets.yaml"  # the targets and their thresholds, edited by hand
MISSING = "—"

# The metrics files read, by path relative to metrics/; each is known by that path without its extension.
FILES = ("kth/eval.json", "binary_add/eval.json", "ocr-crnn/eval.json", "ocr-bilstm/eval.json", "ocr-tesseract/eval.json",
         "ocr-rapidocr/eval.json",
         "kth/splits.json", "kth/train.json", "kth/history.csv",
         "binary_add/splits.json", "binary_add/train.json", "binary_add/history.csv",
         "ocr-crnn/splits.json", "ocr-crnn/by_kind.csv", "ocr-crnn/train.json", "ocr-crnn/history.csv",
         "ocr-bilstm/splits.json", "ocr-bilstm/by_kind.csv", "ocr-bilstm/train.json", "ocr-bilstm/history.csv",
         "ocr-tesseract/splits.json", "ocr-tesseract/by_kind.csv", "ocr-rapidocr/splits.json", "ocr-rapidocr/by_kind.csv",
         "pipeline_times.json", "baselines/ocr-crnn-words.json", "ocr-architectures/results.json",
         "float-spread.json", "ocr-decoding/results.json", "ocr-decoding/frames-per-step-2.json", "ocr-pages/eval.json", "ocr-finetune/eval.json", "ocr-finetune/finetune.json")
SEQUENCE_MODELS = {"kth": "kth", "binary_add": "binary_add"}
OCR_MODELS = {"ocr-crnn": "ocr crnn", "ocr-bilstm": "ocr bilstm", "ocr-tesseract": "Tesseract 5",
              "ocr-rapidocr": "RapidOCR (PP-OCRv6 small)"}
# The reference engines (not trained here) and the pretrained model each reads with.
REFERENCE_MODELS = {"ocr-tesseract": "pretrained `eng` model",
                    "ocr-rapidocr": "pretrained PP-OCRv6 small recognizer, in the `rapidocr` wheel"}
OCR_SPLITS = {
    "test": "trdg, training fonts",
    "test_heldout_fonts": "trdg, held-out trdg fonts",
    "test_reserved": "Pillow, reserved font families (never trained on), clean",
    "test_reserved_degraded": "Pillow, reserved families, degraded",
}
LINE_SPLITS = {
    "test_lines": "trdg, training fonts",
    "test_reserved_lines": "Pillow, reserved families and text, clean",
    "test_reserved_lines_degraded": "Pillow, reserved families and text, degraded",
    "test_reserved_scans": "Pillow, reserved families and text, scan-like, 25-60 px tall",
}
KINDS = ("dictionary", "number", "mixed", "random")  # word kinds (seqlab.tasks.ocr.synth.words.KINDS), table order
KIND_SPLITS = ("test", "test_reserved", "test_reserved_degraded")
SEQUENCE_TASKS = ("kth", "binary_add")

Metrics = dict[str, Any]  # file name (as in FILES, without extension) -> its contents (parse); missing files are absent


@dataclass(frozen=True)
class Target:
    goal: str
    measured: str
    met: bool | None  # None: a figure it needs is missing


def load_metrics(root: Path = METRICS, rev: str | None = None) -> Metrics:
    """The metrics files in `root`, or as committed at git revision `rev` (the documents show those)."""
    found = {}
    for name in FILES:
        if rev is None:
            text = (root / name).read_text() if (root / name).is_file() else None
        else:
            shown = subprocess.run(["git", "show", f"{rev}:{(root / name).relative_to(ROOT).as_posix()}"], cwd=ROOT,
                                   capture_output=True, text=True)
            text = shown.stdout if shown.returncode == 0 else None
        if text is not None:
            found[name.rsplit(".", 1)[0]] = parse(name, text)
    return found


def parse(name: str, text: str) -> Any:
    """A metrics file's contents: JSON as it is, but splits.json as {split: figures}; a CSV as its rows (numbers
    as numbers), except by_kind.csv as {split: {kind: row}}."""
    if not name.endswith(".csv"):
        data = json.loads(text)
        return {r["split"]: r for r in data} if name.endswith("/splits.json") else data
    rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
    if not name.endswith("/by_kind.csv"):
        return rows
    kinds: dict[str, dict[str, Any]] = {}
    for row in rows:
        kinds.setdefault(row["split"], {})[row["kind"]] = row
    return kinds


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def get(metrics: Metrics, name: str, *keys: str) -> Any:
    """metrics[name][key0][key1]..., or None where any level is missing."""
    value = metrics.get(name)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def pct(x: float | None, digits: int = 2) -> str:
    return MISSING if x is None else f"{100 * x:.{digits}f}%"


def duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{seconds:.1f} s" if seconds < 60 else f"{whole // 60} min {whole % 60} s"


def cer_and_accuracy(split: dict | None) -> str:
    if split is None:
        return MISSING
    return (f"CER {pct(split['cer'])} ({pct(split.get('cer_alnum_nocase'))}) / "
            f"word acc {pct(split['word_accuracy'], 1)}")


def training_cost(metrics: Metrics, model_id: str) -> str:
    t, history = metrics.get(f"{model_id}/train"), metrics.get(f"{model_id}/history")
    if t is None or history is None:
        return MISSING
    return f"{t['train_seconds']:.0f} s, {len(history)} epochs, {t['parameters']:,} params"  # a history row per epoch


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# --- the tables ----------------------------------------------------------------------------------------

def summary_table(metrics: Metrics) -> list[str]:
    """README's summary: a row per headline figure of each model and reference engine, as its eval.json holds
    them (the task decides which: seqlab.core.task's headline_metric and headline_splits)."""
    rows = []
    for model_id, label in {**SEQUENCE_MODELS, **OCR_MODELS}.items():
        figures = metrics.get(f"{model_id}/eval")
        if figures is None:
            rows.append([label, MISSING, MISSING, MISSING, MISSING])
            continue
        for split, values in sorted(figures.items(), key=lambda item: item[0] != "test"):  # `test` first
            rows += [[label, f"`{split}`", _split_meaning(metrics, model_id, split),
                      name + (" (lower is better)" if name == "cer" else ""), pct(value)] for name, value in values.items()]
    pages = metrics.get("ocr-pages/eval")
    rows.append(["ocr crnn", "`pages`", "real printed pages (`samples/pages`), lines found by the page reader",
                 "page cer (lower is better)", MISSING if pages is None else pct(pages["cer"])])
    tuned = metrics.get("ocr-finetune/eval") or {}
    for name, meaning in FINETUNE_READERS.items():
        rows.append(["ocr crnn fine-tuned", f"`{name}`", meaning, "cer (lower is better)",
                     pct(tuned[name]["cer"]) if name in tuned else MISSING])
    return table(["model", "split", "what it holds", "figure", "value"], rows)


# The readers of the ocr-finetune stage's eval.json, scored on the held-back lines of `ocr.finetune.gt`.
FINETUNE_READERS = {"before": "held-back ground-truth lines, the default CRNN",
                    "after": "the same lines, the CRNN fine-tuned on the others",
                    "tesseract": "the same lines, Tesseract 5"}


def documents_table(metrics: Metrics) -> list[str]:
    """Page reading (ocr-pages) and fine-tuning (ocr-finetune) on the project's real sample."""
    pages = metrics.get("ocr-pages/eval")
    page_row = [MISSING] * 4 if pages is None else [
        pct(pages["cer"]), pct(pages["cer_nocase"]), f"{pages['lines_found']} of {pages['lines_expected']}",
        "yes" if pages["all_in_order"] else "no"]
    rows = [["page reading (`ocr-pages`)", "whole pages of `samples/pages`", *page_row]]
    tuned, counts = metrics.get("ocr-finetune/eval") or {}, metrics.get("ocr-finetune/finetune") or {}
    for name, meaning in FINETUNE_READERS.items():
        figures = tuned.get(name)
        rows.append([f"fine-tuning (`ocr-finetune`): {name}", meaning,
                     *([MISSING] * 2 if figures is None else [pct(figures["cer"]), pct(figures["cer_nocase"])]),
                     str(counts.get("scored_lines", MISSING)), ""])
    return table(["what", "on", "CER", "CER, case-insensitive", "lines", "in order"], rows)


def _split_meaning(metrics: Metrics, model_id: str, split: str) -> str:
    figures = get(metrics, f"{model_id}/splits", split) or {}
    if "min_len" in figures:
        return f"lengths {figures['min_len']}-{figures['max_len']}"
    if "min_bits" in figures:
        return f"{figures['min_bits']}-{figures['max_bits']} bits"
    return OCR_SPLITS.get(split, MISSING)


def results_table(metrics: Metrics) -> list[str]:
    rows = []
    kth = metrics.get("kth/splits")
    if kth is None:
        rows.append(["kth", MISSING, MISSING, MISSING, training_cost(metrics, "kth")])
    else:
        test, gen = kth["test"], kth["generalization"]
        rows.append(["kth", f"test, lengths {test['min_len']}-{test['max_len']}", f"accuracy {pct(test['accuracy'])}",
                     f"lengths {gen['min_len']}-{gen['max_len']}: {pct(gen['accuracy'])}", training_cost(metrics, "kth")])
    add = metrics.get("binary_add/splits")
    if add is None:
        rows.append(["binary_add", MISSING, MISSING, MISSING, training_cost(metrics, "binary_add")])
    else:
        test, gen = add["test"], add["generalization"]
        rows.append(["binary_add", f"test, {test['min_bits']}-{test['max_bits']} bits",
                     f"exact match {pct(test['exact_match'])}, bits {pct(test['bit_accuracy'])}",
                     f"{gen['min_bits']}-{gen['max_bits']} bits: exact {pct(gen['exact_match'])}",
                     training_cost(metrics, "binary_add")])
    for model_id, label in OCR_MODELS.items():
        test = get(metrics, f"{model_id}/splits", "test")
        split = MISSING if test is None else f"test ({test['count']} words)"
        in_range = MISSING if test is None else f"{cer_and_accuracy(test)}, {test['words_per_s']:.0f} words/s"
        beyond = f"reserved families: {cer_and_accuracy(get(metrics, f'{model_id}/splits', 'test_reserved'))}"
        cost = (f"no training ({REFERENCE_MODELS[model_id]})" if model_id in REFERENCE_MODELS
                else training_cost(metrics, model_id))
        rows.append([label, split, in_range, beyond, cost])
    return table(["model", "split", "in range", "beyond training", "training"], rows)


def split_headers(metrics: Metrics, splits: dict[str, str], unit: str) -> list[str]:
    """A column header per split: its name, what it is, and its size as the first model that has it says."""
    headers = []
    for split, what in splits.items():
        counts = [get(metrics, f"{m}/splits", split, "count") for m in OCR_MODELS]
        size = next((f", {n} {unit}" for n in counts if n is not None), "")
        headers.append(f"`{split}` ({what}{size})")
    return headers


def ocr_table(metrics: Metrics) -> list[str]:
    header = ["model", *split_headers(metrics, OCR_SPLITS, "words"), "words/s on `test`", "speed vs Tesseract"]
    tesseract_speed = get(metrics, "ocr-tesseract/splits", "test", "words_per_s")
    rows = []
    for model_id, label in OCR_MODELS.items():
        row = [label] + [cer_and_accuracy(get(metrics, f"{model_id}/splits", split)) for split in OCR_SPLITS]
        test = get(metrics, f"{model_id}/splits", "test")
        if test is None:
            row += [MISSING, MISSING]
        else:
            row.append(f"{test['words_per_s']:.0f} ({test['threads']} threads)")
            row.append(MISSING if tesseract_speed is None else f"{test['words_per_s'] / tesseract_speed:.1f}x")
        rows.append(row)
    return table(header, rows)


def cer_and_wer(split: dict | None) -> str:
    if split is None:
        return MISSING
    return f"CER {pct(split['cer'])} ({pct(split.get('cer_alnum_nocase'))}) / WER {pct(split.get('wer'), 1)}"


def lines_table(metrics: Metrics) -> list[str]:
    header = ["model", *split_headers(metrics, LINE_SPLITS, "lines"), "lines/s on `test_reserved_lines`"]
    rows = []
    for model_id, label in OCR_MODELS.items():
        psm = get(metrics, f"{model_id}/splits", "test_reserved_lines", "psm")
        row = [label + ("" if psm is None else f" (PSM {psm})")]
        row += [cer_and_wer(get(metrics, f"{model_id}/splits", split)) for split in LINE_SPLITS]
        speed = get(metrics, f"{model_id}/splits", "test_reserved_lines", "words_per_s")
        rows.append(row + [MISSING if speed is None else f"{speed:.0f}"])
    return table(header, rows)


def kinds_table(metrics: Metrics) -> list[str]:
    """Case-sensitive CER by word kind: where a dictionary helps (Tesseract's) and where only the glyphs do."""
    rows = []
    for model_id, label in OCR_MODELS.items():
        for split in KIND_SPLITS:
            by_kind = get(metrics, f"{model_id}/by_kind", split)
            if by_kind is not None:
                rows.append([label, f"`{split}`", *(pct(get(by_kind, k, "cer")) for k in KINDS)])
    return table(["model", "split", *KINDS], rows) if rows else ["No per-kind figures yet: `dvc repro` writes them."]


def architectures_table(metrics: Metrics) -> list[str]:
    """The last point of each candidate of benchmarks/ocr_architectures.py (metrics/ocr-architectures)."""
    results = metrics.get("ocr-architectures/results")
    if results is None:
        return ["No metrics/ocr-architectures/results.json yet: `python benchmarks/ocr_architectures.py` writes it."]
    candidates = results["candidates"]
    splits = list(next(iter(candidates.values()))["points"][-1]["ema"])
    rows = []
    for name, r in candidates.items():
        last = r["points"][-1]
        rows.append([f"`{name}`", f"{r['parameters']:,}", f"{last['samples']:,} ({last['epochs']} epochs)",
                     f"{r['train_samples_per_s']:.0f} / {r['train_chars_per_s']:.0f}",
                     f"{r['read_chars_per_s']:.0f}",
                     *(f"{pct(last['ema'][s]['cer'])} ({pct(last['raw'][s]['cer'])})" for s in splits)])
    return [f"Each candidate trained {results['cpu_minutes']:g} CPU-minutes ({results['threads']} threads) on the "
            f"same {results['train_images']:,} training images with the same augmentation; CER with EMA weights "
            "(raw weights in brackets) on the first images of each reserved split "
            f"({', '.join(f'{n} of `{s}`' for s, n in results['eval_images'].items())}). "
            "The curve: `metrics/ocr-architectures/curve.png`.", "",
            *table(["candidate", "params", "samples seen", "train images/s / chars/s", "read chars/s",
                    *(f"`{s}`" for s in splits)], rows)]


DECODING_SPLITS = ("test", "test_reserved", "test_reserved_degraded", "test_reserved_lines",
                   "test_reserved_lines_degraded", "test_reserved_scans")


def decoding_table(metrics: Metrics) -> list[str]:
    """The decodings of benchmarks/decoding.py on one model: CER per split, random strings, doubled letters, cost."""
    results = metrics.get("ocr-decoding/results")
    if results is None:
        return ["No metrics/ocr-decoding/results.json yet: `python benchmarks/decoding.py` writes it."]
    rows = []
    # JSON keeps keys sorted: greedy first, then the beams by width and language model weight
    def rank(name: str) -> tuple[bool, int, float, float]:
        settings = results["candidates"][name].get("settings", {})
        gate = settings.get("lm_gate")
        return (name != "greedy", settings.get("beam_width", 0), settings.get("lm_weight", 0.0),
                -math.inf if gate is None else gate)

    order = sorted(results["candidates"], key=rank)
    for name in order:
        r = results["candidates"][name]
        splits, kinds = r["splits"], r["kinds"]
        random = [kinds[s]["random"] for s in ("test", "test_heldout_fonts") if "random" in kinds.get(s, {})]
        words, lines = splits["test_reserved"], splits["test_reserved_lines"]
        rows.append([f"{name} (default)" if name == results["default"] else name,
                     *(f"{pct(splits[s]['cer'])} ({pct(splits[s]['cer_nocase'])})" for s in DECODING_SPLITS),
                     " / ".join(pct(x) for x in random) or MISSING,
                     str(sum(v["extra_doubles"] for v in splits.values())),
                     f"{words['decode_ms_per_image']:.2f} / {lines['decode_ms_per_image']:.1f}"])
    gaps: dict[int, int] = {}
    for split_gaps in results["greedy_doubled_gaps"].values():
        for gap, n in split_gaps.items():
            gaps[int(gap)] = gaps.get(int(gap), 0) + n
    even = sum(n for gap, n in gaps.items() if gap % 2 == 0)
    return [*table(["decoding", *(f"`{s}`" for s in DECODING_SPLITS), "random strings (`test` / held-out fonts)",
                    "extra doubled letters, all splits", "decode ms per word / line"], rows), "",
            f"Greedy decoding's doubled letters: {even} of {sum(gaps.values())} come from two emissions an even number "
            "of CTC frames apart (frames between them: "
            + ", ".join(f"{gap}: {n}" for gap, n in sorted(gaps.items())) + ").",
            *frames_per_step_table(metrics)]


def frames_per_step_table(metrics: Metrics) -> list[str]:
    """The two-frames-per-step CRNN's last decoding benchmark against today's model: greedy and each default."""
    before, now = metrics.get("ocr-decoding/frames-per-step-2"), metrics.get("ocr-decoding/results")
    if before is None or now is None:
        return []
    rows = []
    for label, results, default in (("2 (`frames-per-step-2.json`)", before, "default then"),
                                    ("1 (`results.json`)", now, "default")):
        for name in ("greedy", results["default"]):
            splits = results["candidates"][name]["splits"]
            rows.append([label, "greedy" if name == "greedy" else f"{default}: {name}",
                         *(pct(splits[s]["cer"]) for s in DECODING_SPLITS),
                         str(sum(v["extra_doubles"] for v in splits.values()))])
    return ["", "**Frames per LSTM step**: the CRNN trained with 2 CTC frames per step (the previous default; its last "
            "benchmark) and with 1 (`ocr.crnn.model.frames_per_step`), same recipe otherwise; case-sensitive CER.", "",
            *table(["frames per step", "decoding", *(f"`{s}`" for s in DECODING_SPLITS),
                    "extra doubled letters, all splits"], rows)]


def float_spread_table(metrics: Metrics) -> list[str]:
    """The committed run's headline figures vs a rerun whose floats differ (scripts/float_spread.py)."""
    spread = metrics.get("float-spread")
    if spread is None:
        return ["No metrics/float-spread.json yet: `python scripts/float_spread.py` writes it."]
    rows = [[f["model"], f"`{f['split']}`", f["metric"], pct(f["reference"]), pct(f["other"]),
             f"{100 * (f['other'] - f['reference']):+.2f}"] for f in spread["figures"]]
    largest = {}
    for f in spread["figures"]:
        largest[f["model"]] = max(largest.get(f["model"], 0.0), abs(f["other"] - f["reference"]))
    different, identical = spread["different_outputs"], spread["identical_outputs"]
    return [f"The run committed at `{spread['reference_rev']}` vs a rerun of `{spread['other_rev']}` with "
            f"{spread['label']}. Byte-identical in both: {', '.join(f'`{p}`' for p in identical) or 'nothing'}; "
            f"different: {', '.join(f'`{p}`' for p in different) or 'nothing'}."
            + (f" Largest difference per model, in points: {', '.join(f'{m} {100 * d:.2f}' for m, d in largest.items())}."
               if largest else ""), "",
            *table(["model", "split", "figure", "committed run", "rerun", "difference (points)"], rows)]


# --- targets (metrics/targets.yaml) --------------------------------------------------------------------
# Each rule measures one target: (what the table prints as measured, met). A figure it needs that is
# missing gives (MISSING, None). The thresholds are keyword arguments from the target's entry.
Measure = tuple[str, bool | None]
NOT_MEASURED: Measure = (MISSING, None)


def _accuracy(metrics: Metrics, *, at_least: float) -> Measure:
    kth = get(metrics, "kth/splits", "test")
    if kth is None:
        return NOT_MEASURED
    return f"{pct(kth['accuracy'])} (lengths {kth['min_len']}-{kth['max_len']})", kth["accuracy"] >= at_least


def _length_generalization(metrics: Metrics, *, at_least: float) -> Measure:
    kth, gen = get(metrics, "kth/splits", "test"), get(metrics, "kth/splits", "generalization")
    if kth is None or gen is None:
        return NOT_MEASURED
    return (f"{pct(gen['accuracy'])} (lengths {gen['min_len']}-{gen['max_len']})",
            gen["accuracy"] >= at_least and gen["max_len"] >= 2 * kth["max_len"])


def _exact_match_beyond_training(metrics: Metrics, *, at_least: float) -> Measure:
    gen = get(metrics, "binary_add/splits", "generalization")
    if gen is None:
        return NOT_MEASURED
    return f"{pct(gen['exact_match'])} ({gen['min_bits']}-{gen['max_bits']} bits, {gen['n']:,} sums)", \
        gen["exact_match"] >= at_least


def _cer_below_tesseract(metrics: Metrics, *, split: str) -> Measure:
    crnn = get(metrics, "ocr-crnn/splits", split, "cer")
    tesseract = get(metrics, "ocr-tesseract/splits", split, "cer")
    if crnn is None or tesseract is None:
        return NOT_MEASURED
    return f"CRNN {pct(crnn)} vs Tesseract {pct(tesseract)}", crnn < tesseract


def _nocase_cer_no_worse_than_baseline(metrics: Metrics, *, split: str) -> Measure:
    now = get(metrics, "ocr-crnn/splits", split)
    before = get(metrics, "baselines/ocr-crnn-words", "eval", split, "cer")
    if now is None or before is None:
        return NOT_MEASURED
    return f"{pct(now['cer_nocase'])} (was {pct(before)})", now["cer_nocase"] <= before


def _case_cer_ratio(metrics: Metrics, *, split: str, max_ratio: float) -> Measure:
    now = get(metrics, "ocr-crnn/splits", split)
    if now is None:
        return NOT_MEASURED
    return f"{pct(now['cer'])} vs {pct(now['cer_nocase'])}", now["cer"] <= max_ratio * now["cer_nocase"]


def _speed_vs_tesseract(metrics: Metrics, *, split: str, min_ratio: float) -> Measure:
    crnn = get(metrics, "ocr-crnn/splits", split)
    tesseract = get(metrics, "ocr-tesseract/splits", split)
    if crnn is None or tesseract is None:
        return NOT_MEASURED
    ratio = crnn["words_per_s"] / tesseract["words_per_s"]
    threads = (f"{crnn['threads']} threads each" if crnn["threads"] == tesseract["threads"]
               else f"{crnn['threads']} vs {tesseract['threads']} threads")
    unit = "lines" if "lines" in split or "scans" in split else "words"
    return f"{crnn['words_per_s']:.0f} vs {tesseract['words_per_s']:.0f} {unit}/s = {ratio:.1f}x ({threads})", \
        ratio >= min_ratio


def _default_decoding_no_worse_on(metrics: Metrics, *, kind: str, splits: list[str]) -> Measure:
    """The default decoding's CER on one word kind against greedy decoding's (benchmarks/decoding.py)."""
    results = metrics.get("ocr-decoding/results")
    if results is None or results["default"] not in results["candidates"]:
        return NOT_MEASURED
    default, greedy = results["candidates"][results["default"]], results["candidates"]["greedy"]
    pairs = [(default["kinds"][s][kind], greedy["kinds"][s][kind]) for s in splits if kind in default["kinds"].get(s, {})]
    if not pairs:
        return NOT_MEASURED
    return ("; ".join(f"`{s}` {pct(d)} vs greedy {pct(g)}" for s, (d, g) in zip(splits, pairs, strict=False)),
            all(d <= g for d, g in pairs))


def _not_forced(times: dict[str, Any]) -> str:
    return "" if times["forced"] else " (not forced: skipped stages counted)"


def _sequence_stages_time(metrics: Metrics, *, under_minutes: float) -> Measure:
    times = metrics.get("pipeline_times")
    if times is None:
        return NOT_MEASURED
    seconds = sum(s for name, s in times["stages"].items()
                  if name == "validate" or name.split("@")[-1] in SEQUENCE_TASKS)
    return (f"{duration(seconds)} (`validate` and the kth, binary_add stages){_not_forced(times)}",
            seconds < 60 * under_minutes if times["forced"] else None)


def _whole_repro_time(metrics: Metrics, *, max_minutes: float) -> Measure:
    times = metrics.get("pipeline_times")
    if times is None:
        return NOT_MEASURED
    return (f"{duration(times['total_seconds'])}{_not_forced(times)}",
            times["total_seconds"] <= 60 * max_minutes if times["forced"] else None)


RULES: dict[str, Callable[..., Measure]] = {
    "accuracy": _accuracy,
    "length_generalization": _length_generalization,
    "exact_match_beyond_training": _exact_match_beyond_training,
    "cer_below_tesseract": _cer_below_tesseract,
    "nocase_cer_no_worse_than_baseline": _nocase_cer_no_worse_than_baseline,
    "case_cer_ratio": _case_cer_ratio,
    "speed_vs_tesseract": _speed_vs_tesseract,
    "default_decoding_no_worse_on": _default_decoding_no_worse_on,
    "sequence_stages_time": _sequence_stages_time,
    "whole_repro_time": _whole_repro_time,
}


def targets(metrics: Metrics, path: Path = TARGETS) -> list[Target]:
    """The project's targets (metrics/targets.yaml, in its order), each met or not by the figures in `metrics`."""
    found = []
    for entry in yaml.safe_load(path.read_text()):
        args = {k: v for k, v in entry.items() if k not in ("rule", "goal")}
        if entry.get("rule") not in RULES:
            sys.exit(f"{path.relative_to(ROOT)}: rule {entry.get('rule')!r} is not one of {', '.join(RULES)}")
        measured, met = RULES[entry["rule"]](metrics, **args)
        found.append(Target(entry["goal"].format(**args), measured, met))
    return found


def targets_table(metrics: Metrics) -> list[str]:
    met = {True: "yes", False: "**no**", None: MISSING}
    return table(["target", "measured", "met"], [[t.goal, t.measured, met[t.met]] for t in targets(metrics)])


def times_table(metrics: Metrics) -> list[str]:
    times = metrics.get("pipeline_times")
    if times is None:
        return ["No metrics/pipeline_times.json yet: `make timed-repro` writes it."]
    how = "`python scripts/timed_repro.py --force`" if times["forced"] else "`python scripts/timed_repro.py` (not forced)"
    rows = [[f"`{name}`", duration(seconds)] for name, seconds in times["stages"].items()]
    rows.append(["**total**", f"**{duration(times['total_seconds'])}**"])
    return [f"Measured by {how} on {times['cpu_count']} CPUs:", "", *table(["stage", "time"], rows)]


def learning_curve(metrics: Metrics, model_id: str) -> list[str]:
    """Validation CER after each epoch of one model's run, with the training minutes spent so far (the
    run's train_seconds spread evenly over its epochs: history.csv keeps no wall-clock, so reruns are
    byte-identical)."""
    rows, train = metrics.get(f"{model_id}/history"), metrics.get(f"{model_id}/train")
    if rows is None or train is None:
        return [f"No metrics/{model_id}/history.csv yet."]
    per_epoch = train["train_seconds"] / max(1, len(rows))
    return table(["epoch", "training minutes", "val CER", "val word acc"],
                 [[str(r["epoch"]), f"{r['epoch'] * per_epoch / 60:.1f}", pct(r["val_cer"]),
                   pct(r["val_word_accuracy"], 1)] for r in rows])


GENERATED = ("*Printed by `python scripts/results_table.py` (`make results` writes it here) from `metrics/`; "
             "`tests/unit/scripts/test_readme_results.py` fails when this block differs.*")


# The reserved splits (fonts, text and renderer training never saw) on which the README ranks the engines.
STANDING_SPLITS = {"test_reserved": "words, clean", "test_reserved_degraded": "words, degraded",
                   "test_reserved_lines": "lines, clean", "test_reserved_lines_degraded": "lines, degraded",
                   "test_reserved_scans": "lines, scan-like"}
ENGINES = {"ocr-crnn": "seqlab CRNN", "ocr-tesseract": "Tesseract 5", "ocr-rapidocr": "RapidOCR"}


def standing_table(metrics: Metrics) -> list[str]:
    """Where each engine stands on the reserved splits: case-sensitive CER, best first, seqlab's rank."""
    rows = []
    for split, meaning in STANDING_SPLITS.items():
        cers = {name: get(metrics, f"{model_id}/splits", split, "cer") for model_id, name in ENGINES.items()}
        known = sorted((cer, name) for name, cer in cers.items() if cer is not None)
        rank = next((i + 1 for i, (_, name) in enumerate(known) if name == ENGINES["ocr-crnn"]), None)
        rows.append([f"`{split}` ({meaning})", *(pct(c) if c is not None else MISSING for c in cers.values()),
                     known[0][1] if known else MISSING,
                     MISSING if rank is None else ("best" if rank == 1 else f"{rank} of {len(known)}, "
                                                   f"{100 * (cers['seqlab CRNN'] - known[0][0]):.2f} points behind")])
    return table(["reserved split", *ENGINES.values(), "best", "seqlab's place"], rows)


def summary(metrics: Metrics) -> str:
    return "\n".join([GENERATED, "", *summary_table(metrics), "",
                      "Where each engine stands on the reserved splits (case-sensitive CER, the same images; "
                      "seqlab with its default decoding):", "", *standing_table(metrics), "", pipeline_time(metrics)])


def pipeline_time(metrics: Metrics) -> str:
    """One sentence: how long the whole default pipeline took where these figures were made."""
    times = metrics.get("pipeline_times")
    if not times:
        return "No metrics/pipeline_times.json yet: `make timed-repro` writes it."
    longest = max(times["stages"], key=times["stages"].get)
    return (f"The whole default `dvc repro` took {duration(times['total_seconds'])} on the {times['cpu_count']}-CPU "
            f"machine that made these figures, {duration(times['stages'][longest])} of it `{longest}` "
            "(every stage: docs/results.md).")


def tables(metrics: Metrics) -> str:
    sections = [
        [GENERATED],
        results_table(metrics),
        ["**OCR by test split: word images** (CER is case-sensitive on the full charset; in brackets "
         "`cer_alnum_nocase`, the case-folded CER on letters, digits and single spaces only, the terms of the "
         "figures before the `english` charset; the *Targets* use `cer_nocase`, case-folded on the full charset)",
         "", *ocr_table(metrics)],
        ["**OCR by test split: line images** (CER as above, and word error rate, WER, by jiwer; Tesseract reads "
         "lines in single-line mode, RapidOCR every image with its recognizer alone)", "", *lines_table(metrics)],
        ["**Case-sensitive CER by word kind** (Tesseract's dictionaries and PP-OCR's learned context help them on "
         "dictionary words)", "",
         *kinds_table(metrics)],
        ["**Architectures by CER per CPU-minute** (`benchmarks/ocr_architectures.py`; the default model "
         "follows from it, docs/ocr.md *Architectures*)", "", *architectures_table(metrics)],
        ["**Decoding** (`python benchmarks/decoding.py`: the CRNN's scores decoded each way; case-sensitive CER, "
         "case-folded in brackets; docs/ocr.md *Decoding*)", "", *decoding_table(metrics)],
        ["**Real documents** (docs/pages.md, docs/finetuning.md: the sample is Tesseract's test page, 8 lines; "
         "fine-tuning holds back `ocr.finetune.val_share` of them)", "", *documents_table(metrics)],
        ["**Targets**", "", *targets_table(metrics)],
        ["**CRNN validation CER against training time** (one onecycle schedule; `val` is trdg-rendered in the "
         "training fonts, so it tracks `test`, not the reserved splits)", "", *learning_curve(metrics, "ocr-crnn")],
        ["**Pipeline time per stage**", "", *times_table(metrics)],
        ["**Float noise: the same pipeline with another floating-point reduction order** "
         "(`python scripts/float_spread.py`; the top of this page says what is deterministic)", "",
         *float_spread_table(metrics)],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections)


def bench_block(path: Path = BENCH) -> str:
    """The benchmark table of `seqlab bench` from metrics/bench.json, after checking its shape."""
    if not path.is_file():
        return f"*No {path.relative_to(ROOT)} yet: `make bench` writes it.*"
    report = json.loads(path.read_text())
    check_report(report)
    m = report["machine"]
    return "\n".join([
        f"*Printed by `python scripts/results_table.py` from `{path.relative_to(ROOT)}` "
        f"({'`seqlab bench --quick`, a smoke test' if report['quick'] else '`seqlab bench`'}, {report['timestamp']}): "
        f"{m['cpu_model']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, torch {m['versions']['torch']}; "
        f"load average {m['load_average_at_start']} at the start.*",
        "", *bench_table(report), *queue_table()])


def queue_table(folder: Path = QUEUE) -> list[str]:
    """Parallel experiments (scripts/queue_parallel.py --out metrics/queue-parallel/NAME.json), one row each."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        fig, settings = result["figure"], result["settings"]
        r = fig["ratio"]
        params = " ".join(f"`-S {p}`" for p in settings["params"]) or "params.yaml's"
        rows.append([f"{settings['experiments']} x `{settings['target']}` ({params})",
                     f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f} of {len(r['values'])})",
                     f"{fig['ours']['median']:.0f} s", f"{fig['baseline']['median']:.0f} s",
                     f"≤ {fig['target']:g}: {'met' if fig['met'] else 'NOT met'}"])
    if not rows:
        return []
    return ["", f"Parallel experiments (`python scripts/queue_parallel.py`, `{folder.relative_to(ROOT)}`): "
            "`dvc queue start -j N` against the same N experiments with `-j 1`, wall clock.", "",
            *table(["experiments", "parallel / sequential", "-j N", "-j 1", "target"], rows)]


# --- generated blocks in documents -----------------------------------------------------------------------

def readme_block(text: str, begin: str = BEGIN, end: str = END) -> tuple[int, int]:
    """Start and end offsets of the block between `begin` and `end` (markers included) in `text`."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        sys.exit(f"no `{begin}` ... `{end}` block in the document")
    return start, stop + len(end)


def _replace_blocks(text: str, rev: str | None = None) -> str:
    """`text` with each generated block it holds (summary, results, bench) regenerated; at least one."""
    makers = ((SUMMARY_BEGIN, SUMMARY_END, lambda: summary(load_metrics(rev=rev))),
              (BEGIN, END, lambda: tables(load_metrics(rev=rev))),
              (BENCH_BEGIN, BENCH_END, bench_block))
    found = [(begin, end, make) for begin, end, make in makers if begin in text]
    if not found:
        sys.exit(f"no generated block ({', '.join(m[0] for m in makers)}) in the document")
    for begin, end, make in found:
        start, stop = readme_block(text, begin, end)
        text = text[:start] + f"{begin}\n{make()}\n\n{end}" + text[stop:]  # the blank line ends the last table
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", type=Path, nargs="+", metavar="DOC", help="regenerate the blocks in these files")
    mode.add_argument("--check", type=Path, nargs="+", metavar="DOC",
                      help="exit 1 with a diff when a block in these files is stale")
    parser.add_argument("--rev", metavar="GIT_REV",
                        help="read the results' metrics as committed at this revision (e.g. HEAD)")
    args = parser.parse_args(argv)
    documents = args.write or args.check
    if documents is None:
        print(summary(load_metrics()) + "\n\n" + tables(load_metrics()) + "\n\n" + bench_block())
        return 0
    stale = 0
    for doc in documents:
        old = doc.read_text()
        new = _replace_blocks(old, args.rev)
        if args.write:
            doc.write_text(new)
        elif old != new:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                                       f"{doc} (generated blocks)", "scripts/results_table.py"))
            print(f"\n{doc}'s generated blocks differ from the metrics: run `make results`")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
