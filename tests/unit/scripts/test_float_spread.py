"""scripts/float_spread.py compares two checkouts' figures and output bytes; results_table prints the record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support import REPO, load_script


def _load(name: str) -> ModuleType:
    return load_script(REPO / "scripts" / f"{name}.py")


float_spread = _load("float_spread")
results_table = _load("results_table")


def _checkout(path: Path, kth_generalization: float, crnn_cer: float, kth_md5: str) -> Path:
    figures = {"kth": ("accuracy", {"test": 1.0, "generalization": kth_generalization}),
               "binary_add": ("exact_match", {"test": 1.0, "generalization": 1.0}),
               "ocr-bilstm": ("cer", {"test": 0.14, "test_reserved_lines": 0.3}),
               "ocr-crnn": ("cer", {"test": crnn_cer, "test_reserved_lines": 0.026})}
    for model_id, (metric, splits) in figures.items():
        (path / "metrics" / model_id).mkdir(parents=True)
        rows = [{"split": split, metric: value, "n": 10} for split, value in splits.items()]
        (path / "metrics" / model_id / "splits.json").write_text(json.dumps(rows))
    lock = {"schema": "2.0", "stages": {
        "generate@kth": {"outs": [{"path": "data/kth", "md5": "d1.dir"}]},
        "train@kth": {"outs": [{"path": "models/kth.pt", "md5": kth_md5},
                               {"path": "metrics/kth/train.json", "md5": kth_md5}]}}}
    (path / "dvc.lock").write_text(yaml.safe_dump(lock))
    return path


def test_spread_compares_every_split_and_the_output_bytes(tmp_path: Path) -> None:
    reference = _checkout(tmp_path / "a", kth_generalization=0.9983, crnn_cer=0.020, kth_md5="aaa")
    other = _checkout(tmp_path / "b", kth_generalization=0.9993, crnn_cer=0.022, kth_md5="bbb")

    report = float_spread.spread(reference, other, "one torch thread")

    assert report["identical_outputs"] == ["data/kth"]
    assert report["different_outputs"] == ["models/kth.pt"]  # metrics/ files are not compared
    by_key = {(f["model"], f["split"]): f for f in report["figures"]}
    assert len(by_key) == 8
    assert by_key[("kth", "generalization")]["reference"] == 0.9983
    assert by_key[("kth", "generalization")]["other"] == 0.9993
    assert by_key[("ocr-crnn", "test")]["metric"] == "cer"

    printed = "\n".join(results_table.float_spread_table({"float-spread": report}))
    assert "| kth | `generalization` | accuracy | 99.83% | 99.93% | +0.10 |" in printed
    assert "| ocr-crnn | `test` | cer | 2.00% | 2.20% | +0.20 |" in printed
    assert "Largest difference per model, in points: kth 0.10, binary_add 0.00, ocr-bilstm 0.00, ocr-crnn 0.20." \
        in printed
    assert "Byte-identical in both: `data/kth`; different: `models/kth.pt`." in printed


def test_a_checkout_without_metrics_is_named_in_one_line(tmp_path: Path) -> None:
    reference = _checkout(tmp_path / "a", kth_generalization=0.99, crnn_cer=0.02, kth_md5="aaa")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "float_spread.py"), str(tmp_path / "b"),
                             "--label", "x", "--reference", str(reference), "--out", str(tmp_path / "out.json")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"float_spread: {tmp_path / 'b' / 'metrics' / 'kth' / 'splits.json'} is missing: "
        f"run `dvc repro` in {tmp_path / 'b'} first"]
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("missing", ["nothing", "the record"])
def test_the_readme_table_says_how_to_make_a_missing_record(missing: str) -> None:
    metrics = {} if missing == "the record" else {"float-spread": {
        "label": "x", "reference_rev": "a", "other_rev": "b", "identical_outputs": [], "different_outputs": [],
        "figures": []}}
    printed = "\n".join(results_table.float_spread_table(metrics))
    if missing == "the record":
        assert printed.startswith("No metrics/float-spread.json yet")
    else:
        assert "Byte-identical in both: nothing; different: nothing." in printed
