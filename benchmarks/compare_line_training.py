"""One CRNN trained on words, one on lines, one on a mix, at equal compute: which reads words and lines best?

    .venv/bin/python benchmarks/compare_line_training.py [--words 16000] [--epochs 5] [--mix 0.3]

Runs the real stages (`seqlab generate ocr`, `render-reserved`, `train ocr --variant crnn`, `evaluate`) in
a scratch copy of the repository (params.yaml's OCR settings, smaller counts), one configuration after the
other, and prints CER / WER on every test split side by side. Compute is held equal by the number of
training columns: `--words` word images, or as many lines (or a mix) as cover about as many columns (a
line of `ocr.data.lines.words` words is ~LINE_COLUMNS word widths). Test splits are the same images for
every configuration (their seeds do not depend on the training counts). Needs data/ocr-fonts.json
(`dvc repro ocr-fonts`). Takes ~10 min per configuration on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LINE_COLUMNS = 3.8  # mean line width / mean word width of the default params' renders (test_lines vs test)
SPLITS = ("test", "test_heldout_fonts", "test_reserved", "test_reserved_degraded", "test_lines",
          "test_reserved_lines", "test_reserved_lines_degraded")


def _scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if rel.split("/")[0] in ("data", "models", "metrics") or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    (dest / "data").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "data/ocr-fonts.json", dest / "data/ocr-fonts.json")


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["seqlab", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"seqlab {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=16000, help="training images of the words-only run")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--mix", type=float, default=0.3, help="share of lines in the mixed run")
    args = parser.parse_args()
    configs = {"words": (args.words, 0.0), "lines": (round(args.words / LINE_COLUMNS), 1.0),
               "mixed": (round(args.words / (1 - args.mix + args.mix * LINE_COLUMNS)), args.mix)}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="seqlab-lines-") as tmp:
        work = Path(tmp)
        _scratch_copy(work)
        env = {**os.environ, "PYTHONPATH": str(work / "src"), "MLFLOW_DISABLE_TELEMETRY": "true"}
        base = yaml.safe_load((work / "params.yaml").read_text())
        for name, (count, share) in configs.items():
            params = json.loads(json.dumps(base))
            data = params["ocr"]["data"]
            data["counts"] = {"train": count, "val": 500, "test": 1000, "test_heldout_fonts": 500, "test_lines": 300}
            data["lines"]["share"] = share
            params["ocr"]["reserved"].update(count=1000, lines=300)
            params["ocr"]["crnn"]["train"]["epochs"] = args.epochs
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            seconds = {"generate": _run(["generate", "ocr"], work, env)}
            if not (work / "data/ocr-reserved/test_reserved_lines.npz").is_file():
                _run(["render-reserved"], work, env)
            seconds["train"] = _run(["train", "ocr", "--variant", "crnn"], work, env)
            _run(["evaluate", "ocr", "--variant", "crnn"], work, env)
            results[name] = {"train_images": count, "line_share": share, "seconds": seconds,
                             "eval": {r["split"]: r for r in json.loads((work / "metrics/ocr-crnn/splits.json").read_text())}}
            print(f"{name}: {count} images, line share {share}, train {seconds['train']:.0f} s", file=sys.stderr)
    print("| split | " + " | ".join(f"{n} ({c['train_images']} images)" for n, c in results.items()) + " |")
    print("|---|" + "---|" * len(results))
    for split in SPLITS:
        cells = [f"CER {100 * r['eval'][split]['cer']:.2f}% / WER {100 * r['eval'][split]['wer']:.1f}%"
                 for r in results.values()]
        print(f"| `{split}` | " + " | ".join(cells) + " |")
    print("| training seconds | " + " | ".join(f"{r['seconds']['train']:.0f}" for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
