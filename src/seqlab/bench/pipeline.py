"""A no-op `dvc repro` of the project vs DVC's own floor: a no-op repro of a one-stage pipeline.

"No-op" means every stage is up to date: the project is timed only when `dvc status` reports
nothing but always-changed stages (there are none today); otherwise its figure is skipped, since the
repro would retrain. Target: at most TARGET times DVC's floor, a regression guard (the same-shape figure
below shows what DVC itself costs for this structure). The floor pipeline is
made in a scratch directory (`dvc init --no-scm`, one `echo` stage, reproduced once). Both run as
`python -m dvc repro` subprocesses, interpreter start-up included, alternating in each repeat.

A second figure compares the project with a same-shape pipeline: one stage per project stage, each with
as many deps, outs and params keys (the project's params.yaml, copied), every path a small file, linked
as in the project (an out that another stage reads stays that stage's dep). What the project costs
beyond it is what its real files cost (folders, models, data); what the same-shape pipeline costs
beyond the floor is DVC's bookkeeping per stage, dep and lock entry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from seqlab.bench.report import figure, skipped

TARGET = 2.5  # a regression guard: DVC's own bookkeeping for this stage structure measured 1.35-1.46x (issue 25)
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
    shape_repo = same_shape_pipeline(project, workdir / "dvc-same-shape")
    settings["same shape"] = "the project's stages, deps, outs and params keys, every path a small file"
    ours, floor, shape = [], [], []
    for _ in range(repeats):
        ours.append(_seconds(["repro"], project))
        floor.append(_seconds(["repro"], floor_repo))
        shape.append(_seconds(["repro"], shape_repo))
    return {"settings": settings,
            "figures": {"no-op dvc repro": figure(ours, floor, unit="s", ours_label="project", better="lower",
                                                  baseline_label="one-stage pipeline", target=TARGET),
                        "no-op dvc repro vs same shape": figure(
                            ours, shape, unit="s", ours_label="project", better="lower",
                            baseline_label="same-shape pipeline of small files")}}


def trivial_pipeline(path: Path) -> Path:
    """A DVC project without git holding one up-to-date `echo` stage."""
    path.mkdir(parents=True, exist_ok=True)
    _dvc(["init", "--no-scm", "-q", "-f"], path)
    (path / "dvc.yaml").write_text(TRIVIAL_DVC_YAML)
    _dvc(["repro", "-q"], path)
    return path


def same_shape_pipeline(project: Path, path: Path) -> Path:
    """A DVC project without git whose stages mirror `project`'s locked stages, every dep and out a small file.

    Each distinct project path becomes one file, so shared deps stay shared and the graph keeps its edges;
    params keys stay keys of a copy of the project's params.yaml. Reproduced once, so it is up to date.
    """
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    path.mkdir(parents=True, exist_ok=True)
    _dvc(["init", "--no-scm", "-q", "-f"], path)
    if (project / "params.yaml").is_file():  # a project whose stages read no params may have none
        (path / "params.yaml").write_text((project / "params.yaml").read_text())
    names: dict[str, str] = {}

    def file_for(original: str) -> str:
        return names.setdefault(original, f"f/{len(names)}")

    stages: dict[str, Any] = {}
    produced: set[str] = set()  # files some stage writes; the rest are written here, as inputs
    defined = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    for name, stage in lock["stages"].items():
        if name.split("@")[0] not in defined:  # DVC leaves removed stages in the lock file
            continue
        outs = [file_for(o["path"]) for o in stage.get("outs", [])]
        produced.update(outs)
        entry: dict[str, Any] = {"cmd": "touch " + " ".join(outs) if outs else "true",
                                 "deps": [file_for(d["path"]) for d in stage.get("deps", [])], "outs": outs}
        keys = sorted(stage.get("params", {}).get("params.yaml", {}))
        if keys:
            entry["params"] = keys
        stages[re.sub(r"\W", "_", name)] = entry
    (path / "f").mkdir(exist_ok=True)
    for original, name in names.items():
        if name not in produced:
            (path / name).write_text(original + "\n")
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
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
