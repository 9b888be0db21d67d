"""The generated blocks of README.md (the summary), docs/results.md (every table) and docs/benchmarks.md are
what scripts/results_table.py prints from metrics/, and its targets are computed.

The check runs the script as a user would (`--check README.md docs/...` from the repository root); the
target logic is tested on small fabricated metrics, one set that meets every target and one that
misses each.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys

import pytest

from tests.support import REPO

SCRIPT = REPO / "scripts" / "results_table.py"

_spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
assert _spec is not None and _spec.loader is not None
results_table = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = results_table  # dataclasses look their module up there
_spec.loader.exec_module(results_table)


def _ocr_split(cer: float, words_per_s: float = 1000.0, nocase: float | None = None) -> dict:
    return {"cer": cer, "cer_nocase": cer if nocase is None else nocase, "cer_alnum_nocase": cer,
            "word_accuracy": 1 - 5 * cer, "count": 100, "words_per_s": words_per_s, "threads": 2}


def _ocr_eval(cer: float, reserved: float, degraded: float, words_per_s: float, lines: float) -> dict:
    line_splits = ("test_reserved_lines", "test_reserved_lines_degraded", "test_reserved_scans")
    return {"test": _ocr_split(cer, words_per_s), "test_heldout_fonts": _ocr_split(cer),
            "test_reserved": _ocr_split(reserved, nocase=reserved / 1.5),
            "test_reserved_degraded": _ocr_split(degraded, nocase=degraded / 1.5),
            **{split: {**_ocr_split(lines), "wer": 0.05} for split in line_splits}}


# Every target met at its limit: 99.9%, 99%, 100%, lines/scans below Tesseract, reserved words no worse than the
# words-only baseline case-insensitively and case-sensitive <= 1.5x that, 5x Tesseract's speed, 3 min, 25 min.
GOOD = {
    "kth/splits": {"test": {"accuracy": 0.9995, "min_len": 3, "max_len": 10},
                 "generalization": {"accuracy": 0.99, "min_len": 11, "max_len": 20}},
    "binary_add/splits": {"test": {"exact_match": 1.0, "bit_accuracy": 1.0, "min_bits": 1, "max_bits": 16},
                        "generalization": {"exact_match": 1.0, "min_bits": 18, "max_bits": 128, "n": 100}},
    "ocr-crnn/splits": _ocr_eval(cer=0.005, reserved=0.015, degraded=0.03, words_per_s=1000.0, lines=0.015),
    "ocr-bilstm/splits": _ocr_eval(cer=0.03, reserved=0.05, degraded=0.08, words_per_s=1500.0, lines=0.1),
    "ocr-tesseract/splits": _ocr_eval(cer=0.10, reserved=0.02, degraded=0.03, words_per_s=200.0, lines=0.016),
    "baselines/ocr-crnn-words": {"eval": {"test_reserved": {"cer": 0.010}, "test_reserved_degraded": {"cer": 0.020}}},
    "pipeline_times": {"stages": {"validate": 2.0, "train@kth": 60.0, "train@binary_add": 100.0, "ocr-train@crnn": 900.0},
                       "total_seconds": 1500.0, "cpu_count": 2, "forced": True},
    "ocr-decoding/results": {
        "default": "beam, LM 0.15", "greedy_doubled_gaps": {"test": {"2": 3, "5": 1}},
        "candidates": {name: {"splits": {split: {"cer": 0.01, "cer_nocase": 0.01, "extra_doubles": 1,
                                                 "decode_ms_per_image": 1.0} for split in results_table.DECODING_SPLITS},
                              "kinds": {"test": {"random": 0.05}, "test_heldout_fonts": {"random": 0.08}}}
                       for name in ("greedy", "beam, LM 0.15")}},
}
GOOD["ocr-tesseract/splits"]["test_reserved_lines"]["words_per_s"] = 1000.0 / 3  # the CRNN reads lines 3x as fast


def _met(metrics: dict) -> dict[str, bool | None]:
    return {t.goal: t.met for t in results_table.targets(metrics)}


def _changed(path: tuple[str, ...], value: object) -> dict:
    metrics = copy.deepcopy(GOOD)
    node = metrics
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return metrics


def test_readme_block_matches_metrics():
    # A file git tracks but the checkout lacks: skip. One git does not track (a stage that has not run yet
    # where these figures were committed) prints as missing in the blocks, which are checked all the same.
    tracked = set(subprocess.run(["git", "ls-files", "metrics"], cwd=REPO, capture_output=True, text=True).stdout.split())
    missing = [f"metrics/{name}" for name in results_table.FILES
               if f"metrics/{name}" in tracked and not (REPO / "metrics" / name).is_file()]
    if missing:
        pytest.skip(f"metrics files missing (run `dvc repro` and `make timed-repro`): {', '.join(missing)}")
    check = [sys.executable, str(SCRIPT), "--check", *results_table.DOCUMENTS]
    proc = subprocess.run(check, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:  # metrics regenerated here (`make pipeline`): the documents show HEAD's
        proc = subprocess.run([*check, "--rev", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f"a results block is stale, run `make results`:\n{proc.stdout}{proc.stderr}"


def test_each_document_holds_its_block():
    """The summary stays in the README (its first screen), every table in docs/results.md, the benchmark in
    docs/benchmarks.md: a block moved or deleted by an edit fails here, not silently in `--check`."""
    texts = {doc: (REPO / doc).read_text() for doc in results_table.DOCUMENTS}
    assert results_table.SUMMARY_BEGIN in texts["README.md"] and results_table.BEGIN not in texts["README.md"]
    assert results_table.BEGIN in texts["docs/results.md"]
    assert results_table.BENCH_BEGIN in texts["docs/benchmarks.md"]


def test_the_summary_is_each_models_headline_figures():
    metrics = {"kth/eval": {"generalization": {"accuracy": 0.99}, "test": {"accuracy": 1.0}},
               "kth/splits": GOOD["kth/splits"], "ocr-crnn/eval": {"test": {"cer": 0.02}}}
    rows = results_table.summary_table(metrics)[2:]
    assert rows[:3] == ["| kth | `test` | lengths 3-10 | accuracy | 100.00% |",
                        "| kth | `generalization` | lengths 11-20 | accuracy | 99.00% |",
                        "| binary_add | — | — | — | — |"]
    assert "| ocr crnn | `test` | trdg, training fonts | cer (lower is better) | 2.00% |" in rows


def test_real_documents_rows_come_from_the_pages_and_finetune_stages():
    metrics = {"ocr-pages/eval": {"pages": 1, "cer": 0.004, "cer_nocase": 0.002, "lines_found": 8,
                                  "lines_expected": 8, "all_in_order": True},
               "ocr-finetune/eval": {"before": {"cer": 0.05, "cer_nocase": 0.04, "wer": 0.2},
                                     "after": {"cer": 0.01, "cer_nocase": 0.01, "wer": 0.05}},
               "ocr-finetune/finetune": {"scored_lines": 2}}
    summary = results_table.summary_table(metrics)
    assert any("`pages`" in row and row.endswith("| 0.40% |") for row in summary)
    assert any("`after`" in row and row.endswith("| 1.00% |") for row in summary)
    assert any("`tesseract`" in row and row.endswith("| — |") for row in summary)  # not run: missing, not 0
    rows = results_table.documents_table(metrics)[2:]
    assert rows[0] == "| page reading (`ocr-pages`) | whole pages of `samples/pages` | 0.40% | 0.20% | 8 of 8 | yes |"
    assert "| 5.00% | 4.00% | 2 |" in rows[1] and "| 1.00% | 1.00% | 2 |" in rows[2]


def test_all_targets_met_at_their_limits():
    met = _met(GOOD)
    assert len(met) == 15
    assert all(value is True for value in met.values()), met


@pytest.mark.parametrize("path, value, goal", [
    (("kth/splits", "test", "accuracy"), 0.998, "kth test accuracy"),
    (("kth/splits", "generalization", "accuracy"), 0.989, "twice the longest trained length"),
    (("kth/splits", "generalization", "max_len"), 19, "twice the longest trained length"),
    (("binary_add/splits", "generalization", "exact_match"), 0.9999, "binary_add exact match"),
    (("ocr-crnn/splits", "test_reserved_lines", "cer"), 0.016, "`test_reserved_lines` below"),  # a tie
    (("ocr-tesseract/splits", "test_reserved_lines_degraded", "cer"), 0.014, "`test_reserved_lines_degraded`"),
    (("ocr-tesseract/splits", "test_reserved_scans", "cer"), 0.015, "`test_reserved_scans`"),
    (("ocr-crnn/splits", "test_reserved", "cer_nocase"), 0.0101, "`test_reserved`: case-folded"),
    (("baselines/ocr-crnn-words", "eval", "test_reserved_degraded", "cer"), 0.0199,
     "`test_reserved_degraded`: case-folded"),
    (("ocr-crnn/splits", "test_reserved", "cer"), 0.0151, "`test_reserved`: case-sensitive"),
    (("ocr-tesseract/splits", "test", "words_per_s"), 201.0, "5x Tesseract"),
    (("ocr-tesseract/splits", "test_reserved_lines", "words_per_s"), 334.0, "3x Tesseract's on `test_reserved_lines`"),
    (("ocr-decoding/results", "candidates", "beam, LM 0.15", "kinds", "test_heldout_fonts", "random"), 0.0801,
     "no worse than greedy on random strings"),
    (("pipeline_times", "stages", "train@binary_add"), 120.0, "kth + binary_add"),
    (("pipeline_times", "total_seconds"), 1501.0, "whole default"),
])
def test_each_target_can_be_missed(path, value, goal):
    met = _met(_changed(path, value))
    missed = [g for g, m in met.items() if m is False]
    assert len(missed) == 1 and goal in missed[0], met
    assert all(m is True for g, m in met.items() if g != missed[0])


def test_missing_figures_are_neither_met_nor_missed():
    metrics = copy.deepcopy(GOOD)
    del metrics["pipeline_times"], metrics["ocr-crnn/splits"]["test_reserved_scans"]
    met = _met(metrics)
    assert [g for g, m in met.items() if m is None] == [
        "CRNN case-sensitive CER on `test_reserved_scans` below Tesseract's (PSM 7)",
        "kth + binary_add stages < 3 min", "whole default `dvc repro` <= 25 min"]
    text = results_table.tables(metrics)  # prints "—" for what is missing instead of failing
    assert "No metrics/pipeline_times.json yet" in text
    assert "| ocr crnn | CER 0.50% (0.50%) / word acc 97.5% | CER 0.50% (0.50%) / word acc 97.5% |" in text
    assert "/ WER 5.0% | — |" in text  # the CRNN's missing scan split


def test_time_targets_need_a_forced_run():
    met = _met(_changed(("pipeline_times", "forced"), False))
    assert met["whole default `dvc repro` <= 25 min"] is None
    assert met["kth + binary_add stages < 3 min"] is None


def test_readme_is_checked_against_the_committed_metrics_after_a_rerun(tmp_path):
    """`make pipeline` on another machine changes the metrics in their last digits; the README documents
    the committed ones, so `--check --rev HEAD` is what the block is held to then."""
    head = results_table.load_metrics(rev="HEAD")
    assert set(head) <= {name.rsplit(".", 1)[0] for name in results_table.FILES}
    here = results_table.load_metrics()
    assert set(head) == set(here) or not head  # the same files as the working tree, read from git


@pytest.mark.parametrize("begin, end", [("BEGIN", "END"), ("SUMMARY_BEGIN", "SUMMARY_END")])
def test_write_then_check_round_trip(tmp_path, monkeypatch, begin, end):
    readme, other = tmp_path / "README.md", tmp_path / "other.md"
    begin, end = getattr(results_table, begin), getattr(results_table, end)
    readme.write_text(f"# x\n\nbefore\n\n{begin}\nold figures\n{end}\n\nafter\n")
    other.write_text(f"{results_table.BEGIN}\n{results_table.END}\n")
    monkeypatch.setattr(results_table, "load_metrics", lambda rev=None: GOOD)
    assert results_table.main(["--check", str(readme), str(other)]) == 1
    assert results_table.main(["--write", str(readme), str(other)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "old figures" not in text
    assert results_table.main(["--check", str(readme), str(other)]) == 0
    other.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no generated block"):
        results_table.main(["--check", str(other)])


def test_detail_files_are_read_by_split_and_by_kind():
    """splits.json and by_kind.csv (seqlab.core.results) hold what eval.json leaves out; they are read keyed."""
    splits = results_table.parse("kth/splits.json", '[{"split": "test", "accuracy": 1.0, "n": 5}]')
    assert splits == {"test": {"split": "test", "accuracy": 1.0, "n": 5}}
    kinds = results_table.parse("ocr-crnn/by_kind.csv", "split,kind,count,cer\ntest,number,4,0.25\n")
    assert kinds == {"test": {"number": {"split": "test", "kind": "number", "count": 4, "cer": 0.25}}}
    history = results_table.parse("kth/history.csv", "epoch,val_loss\n1,0.5\n2,0.25\n")
    assert results_table.training_cost({"kth/train": {"train_seconds": 9.4, "parameters": 1234}, "kth/history": history},
                                       "kth") == "9 s, 2 epochs, 1,234 params"


def test_the_decoding_table_marks_the_default_and_explains_the_doubled_letters():
    rows = results_table.decoding_table(GOOD)
    assert rows[2].startswith("| greedy |") and rows[3].startswith("| beam, LM 0.15 (default) |")
    assert "5.00% / 8.00%" in rows[2]  # random strings: `test` / held-out fonts
    assert rows[-1].startswith("Greedy decoding's doubled letters: 3 of 4 come from two emissions an even number")


def test_the_standing_table_ranks_the_engines_per_reserved_split():
    rows = results_table.standing_table(GOOD)
    # reserved words: CRNN 1.5%, Tesseract 2%, RapidOCR absent
    assert rows[2] == "| `test_reserved` (words, clean) | 1.50% | 2.00% | — | seqlab CRNN | best |"
    metrics = _changed(("ocr-tesseract/splits", "test_reserved", "cer"), 0.01)
    assert results_table.standing_table(metrics)[2].endswith("| Tesseract 5 | 2 of 2, 0.50 points behind |")
