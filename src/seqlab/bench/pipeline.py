"""A no-op `dvc repro` of the project vs DVC's own floor: a no-op repro of a one-stage pipeline.

"No-op" means every stage is up to date: the project is timed only when `dvc status` reports
nothing but always-changed stages (there are none today); otherwise its figure is skipped, since the
repro would retrain. Target: at most TARGET times DVC's floor. The floor pipeline is
made in a scratch directory (`dvc init --no-scm`, one `echo` stage, reproduced once). Both run as
`python -m dvc repro` subprocesses, interpreter start-up included, alternating in each repeat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from seqlab.bench.report import figure, skipped

TARGET = 1.5
TRIVIAL_DVC_YAML = "stages:\n  trivial:\n    cmd: echo ok > out.txt\n    outs:\n      - out.txt\n"


def run(project: Path, repeats: int, workdir: Path) -> dict[str, Any]:
    floor_repo = trivial_pipeline(workdir / "dvc-floor")
    settings = {"project": str(project), "floor": "one stage `echo ok > out.txt`, dvc init --no-scm"}
    if not (project / "dvc.yaml").is_file():
        return {"settings": settings, "figures": {"no-op dvc repro": skipped(f"no dvc.yaml in {project}")}}
    changed = stale_stages(project)
    if changed:
        return {"settings": settings,
                "figures": {"no-op dvc repro": skipped(f"project not up to date ({', '.join(changed)}): "
                                                       "run dvc repro first")}}
    ours, floor = [], []
    for _ in range(repeats):
        ours.append(_seconds(["repro"], project))
        floor.append(_seconds(["repro"], floor_repo))
    return {"settings": settings,
            "figures": {"no-op dvc repro": figure(ours, floor, unit="s", ours_label="project", better="lower",
                                                  baseline_label="one-stage pipeline", target=TARGET)}}


def trivial_pipeline(path: Path) -> Path:
    """A DVC project without git holding one up-to-date `echo` stage."""
    path.mkdir(parents=True, exist_ok=True)
    _dvc(["init", "--no-scm", "-q", "-f"], path)
    (path / "dvc.yaml").write_text(TRIVIAL_DVC_YAML)
    _dvc(["repro", "-q"], path)
    return path


def stale_stages(project: Path) -> list[str]:
    """Stages `dvc status` reports as changed for a reason other than `always_changed`."""
    out = _dvc(["status", "--json"], project).stdout
    status = json.loads(out or "{}")
    return sorted(stage for stage, reasons in status.items() if reasons != ["always changed"])


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} in {cwd} failed: {result.stderr.strip()[-500:]}")
    return result


def _seconds(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    _dvc(args, cwd)
    return time.perf_counter() - start
