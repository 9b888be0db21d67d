"""Print the README's results table (markdown) from the metrics the pipeline wrote.

    python scripts/results_table.py            # after `dvc repro`; paste the output into README.md

Every figure comes from metrics/<id>/{train,eval}.json: nothing here is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = Path("metrics")


def _load(model_id: str, name: str) -> dict:
    path = METRICS / model_id / f"{name}.json"
    if not path.is_file():
        sys.exit(f"{path} is missing: run `dvc repro` first")
    return json.loads(path.read_text())


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _train(model_id: str) -> str:
    t = _load(model_id, "train")
    return f"{t['train_seconds']:.0f} s, {t['epochs_run']} epochs, {t['parameters']:,} params"


def sequence_rows() -> list[str]:
    kth, add = _load("kth", "eval"), _load("binary_add", "eval")
    return [
        f"| kth | test, lengths {kth['test']['min_len']}-{kth['test']['max_len']} | accuracy "
        f"{_pct(kth['test']['accuracy'])} | lengths {kth['generalization']['min_len']}-"
        f"{kth['generalization']['max_len']}: {_pct(kth['generalization']['accuracy'])} | {_train('kth')} |",
        f"| binary_add | test, {add['test']['min_bits']}-{add['test']['max_bits']} bits | exact match "
        f"{_pct(add['test']['exact_match'])}, bits {_pct(add['test']['bit_accuracy'])} | "
        f"{add['generalization']['min_bits']}-{add['generalization']['max_bits']} bits: exact "
        f"{_pct(add['generalization']['exact_match'])} | {_train('binary_add')} |",
    ]


def ocr_rows() -> list[str]:
    rows = []
    for model_id, label in (("ocr-crnn", "ocr crnn"), ("ocr-bilstm", "ocr bilstm"), ("ocr-tesseract", "Tesseract 5")):
        m = _load(model_id, "eval")
        test, held = m["test"], m["test_heldout_fonts"]
        cost = _train(model_id) if model_id != "ocr-tesseract" else "no training (PSM 8, charset whitelist)"
        rows.append(f"| {label} | test ({test['count']} words) | CER {_pct(test['cer'])}, word acc "
                    f"{_pct(test['word_accuracy'])}, {test['words_per_s']:.0f} words/s | held-out fonts: CER "
                    f"{_pct(held['cer'])}, word acc {_pct(held['word_accuracy'])} | {cost} |")
    return rows


def main() -> int:
    print("| model | split | in range | beyond training | training |")
    print("|---|---|---|---|---|")
    for row in sequence_rows() + ocr_rows():
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
