"""What an evaluation leaves in metrics/<model id>/: one layout for every model, ours and the Tesseract baseline.

| file          | holds                                                              | dvc.yaml                       |
|---------------|--------------------------------------------------------------------|--------------------------------|
| `eval.json`   | the headline figure on each headline split: `{"test": {"cer": x}}` | `metrics:` (`dvc metrics show`) |
| `splits.json` | every figure of every test split, one record per split             | `plots:` (bars by split)        |
| `<name>.csv`  | the breakdowns: by length, by text kind, by words per line          | `plots:`                        |
| `*.png`       | figures: the per-length curve, prediction grids                    | `plots:`                        |

eval.json stays a few scalars because `dvc metrics show` and `dvc exp show` print one column per key of
every metrics file: with the breakdowns in it they printed lines of 7,000 and 80,000 characters. Its
figures are the ones a person compares runs by (the task's headline metric on its headline splits,
Task.headline_splits); they are also the MLflow run's evaluation metrics and what the champion rule reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqlab.core.plots import write_csv
from seqlab.core.storage import write_json

if TYPE_CHECKING:  # a type only: core.task imports torch, and MLflow logging reads this module without it
    from seqlab.core.task import Evaluation

HEADLINE_FILE = "eval.json"
SPLITS_FILE = "splits.json"


def headline_figures(metrics: Mapping[str, Mapping[str, Any]], metric: str,
                     splits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """eval.json: `metric`'s figure (the part after the split: "test.cer" -> "cer") on each of `splits` that
    was scored."""
    key = metric.split(".", 1)[1]
    return {split: {key: metrics[split][key]} for split in splits if split in metrics}


def split_records(metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """splits.json: one record per split, its name under `split`."""
    return [{"split": split, **figures} for split, figures in metrics.items()]


def write_results(out: Path, evaluation: Evaluation, metric: str, splits: Sequence[str]) -> list[Path]:
    """Write `evaluation` to `out` in the layout above (headline: `metric` on `splits`); return the files,
    eval.json first."""
    files = [out / HEADLINE_FILE, out / SPLITS_FILE]
    write_json(files[0], headline_figures(evaluation.metrics, metric, splits))
    write_json(files[1], split_records(evaluation.metrics))
    for name, rows in evaluation.tables.items():
        write_csv(out / f"{name}.csv", rows)
        files.append(out / f"{name}.csv")
    for name, draw in evaluation.figures.items():
        draw(out / name)
        files.append(out / name)
    return files
