"""Run the DVC pipeline one stage at a time and record how long each stage takes.

    python scripts/timed_repro.py           # stages DVC finds up to date are skipped (~1 s each)
    python scripts/timed_repro.py --force   # `make timed-repro`: every stage reruns, as from a fresh clone

Each stage of dvc.yaml (`foreach` expanded by DVC: `train@kth`, ...) runs as `dvc repro --single-item <stage>`
in dvc.yaml's order, which is topological; this script checks that no stage depends on the output of
a stage after it. Times are wall-clock (time.perf_counter) and include DVC's own start-up, about
1 s per stage, so the total is a little above one `dvc repro`. The result goes to
metrics/pipeline_times.json: {"stages": {name: seconds}, "total_seconds", "cpu_count", "forced"}.
No DVC stage writes that file (it times the stages themselves): git tracks it, and
scripts/results_table.py puts it in docs/results.md. A failing stage stops the run and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from seqlab.core.storage import write_text

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / "metrics" / "pipeline_times.json"


def _paths(entries: list) -> list[str]:
    """Paths of deps/outs/metrics/plots entries, which are strings or {path: options}."""
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries]


def _inside(path: str, other: str) -> bool:
    return path == other or path.startswith(other.rstrip("/") + "/")


def expanded_stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[tuple[str, dict]]:
    """Every stage DVC runs as (name, definition), in file order, as DVC itself resolves dvc.yaml: `vars`
    interpolated, `foreach`/`matrix` expanded (train@kth)."""
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    with Repo(str(dvc_yaml.parent)) as repo:
        resolved = load_file(repo, str(dvc_yaml.resolve())).resolver.resolve()  # absolute: not the cwd's
    return list(resolved.get("stages", {}).items())


def ordered_stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[str]:
    """dvc.yaml's stage names in file order, after checking that the order respects dependencies."""
    stages = expanded_stages(dvc_yaml)
    for i, (name, stage) in enumerate(stages):
        for later, later_stage in stages[i + 1:]:
            outs = _paths(later_stage.get("outs", []) + later_stage.get("metrics", []) + later_stage.get("plots", []))
            for dep in _paths(stage.get("deps", [])):
                if any(_inside(dep, out) or _inside(out, dep) for out in outs):
                    raise SystemExit(f"dvc.yaml: {name} depends on {dep}, an output of the later stage {later}")
    return [name for name, _ in stages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="pass -f: rerun every stage even when up to date")
    args = parser.parse_args(argv)
    times: dict[str, float] = {}
    start = time.perf_counter()
    for stage in ordered_stages():
        cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", *(["-f"] if args.force else []), stage]
        print(f"--- {stage}", flush=True)
        began = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc != 0:
            print(f"{stage} failed (exit {rc}); {TIMES.relative_to(ROOT)} not written", file=sys.stderr)
            return rc
        times[stage] = round(time.perf_counter() - began, 1)
    total = round(time.perf_counter() - start, 1)
    result = {"stages": times, "total_seconds": total, "cpu_count": os.cpu_count(), "forced": args.force}
    write_text(TIMES, json.dumps(result, indent=2) + "\n")
    width = max(map(len, times))
    for stage, seconds in times.items():
        print(f"{stage:<{width}}  {seconds:8.1f} s")
    print(f"{'total':<{width}}  {total:8.1f} s  ({os.cpu_count()} CPUs, forced: {args.force}) -> {TIMES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
