"""How far the pipeline's figures move with floating-point noise: this checkout's metrics vs another run's.

    python scripts/float_spread.py OTHER_CHECKOUT --label "one torch thread (OMP_NUM_THREADS=1)"

OTHER_CHECKOUT is a clone of this repository in which `dvc repro` ran under some other condition that
changes the order of floating-point reductions (another machine, another thread count). The script compares
each model's headline figure on every test split (metrics/<id>/splits.json) and which data and model
files came out byte-identical (the md5s in both dvc.lock files), and writes metrics/float-spread.json;
scripts/results_table.py prints it in docs/results.md. It is a record of one measurement, not a pipeline
output: rerun it after a retrain to refresh it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from seqlab.core import paths, registry

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "metrics" / "float-spread.json"
COMPARED_OUTS = ("data/", "models/")


def headline_metrics() -> dict[str, str]:
    """Model id -> the figure compared on each of its splits: its Task's headline metric, without the split."""
    found = {}
    for entry in registry.entries():
        metric = registry.task_class(entry.name).headline_metric.split(".", 1)[1]  # "test.cer" -> "cer"
        for variant in entry.variants or (None,):
            found[paths.model_id(entry.name, variant)] = metric
    return found


def locked_md5s(checkout: Path) -> dict[str, str]:
    """Output path -> md5 for the data and model outputs recorded in `checkout`'s dvc.lock."""
    lock = yaml.safe_load((checkout / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if out["path"].startswith(COMPARED_OUTS) and "md5" in out}


def headline_figures(checkout: Path) -> dict[tuple[str, str], float]:
    """(model id, split) -> that model's headline figure on that split, from metrics/<id>/splits.json."""
    found = {}
    for model_id, metric in headline_metrics().items():
        path = checkout / "metrics" / model_id / "splits.json"
        if not path.is_file():
            raise SystemExit(f"float_spread: {path} is missing: run `dvc repro` in {checkout} first")
        for row in json.loads(path.read_text()):
            found[(model_id, row["split"])] = float(row[metric])
    return found


def spread(reference: Path, other: Path, label: str) -> dict[str, Any]:
    ours, theirs = headline_figures(reference), headline_figures(other)
    metric = headline_metrics()
    ref_md5, other_md5 = locked_md5s(reference), locked_md5s(other)
    shared = sorted(set(ref_md5) & set(other_md5))
    return {
        "label": label,
        "reference_rev": _rev(reference),
        "other_rev": _rev(other),
        "identical_outputs": [p for p in shared if ref_md5[p] == other_md5[p]],
        "different_outputs": [p for p in shared if ref_md5[p] != other_md5[p]],
        "figures": [{"model": model_id, "split": split, "metric": metric[model_id],
                     "reference": ours[(model_id, split)], "other": theirs[(model_id, split)]}
                    for model_id, split in ours if (model_id, split) in theirs],
    }


def _rev(checkout: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="a clone of this repository where `dvc repro` ran")
    parser.add_argument("--label", required=True, help="what differed in that run, as docs/results.md shows it")
    parser.add_argument("--reference", type=Path, default=ROOT, help="the checkout compared against (this one)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for checkout in (args.reference, args.other):
        if not (checkout / "dvc.lock").is_file():
            print(f"float_spread: {checkout} has no dvc.lock: not a checkout where `dvc repro` ran", file=sys.stderr)
            return 2
    report = spread(args.reference, args.other, args.label)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.out}: {len(report['figures'])} figures, {len(report['different_outputs'])} of "
          f"{len(report['identical_outputs']) + len(report['different_outputs'])} outputs differ in their bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
