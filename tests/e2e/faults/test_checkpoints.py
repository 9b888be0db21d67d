"""Safe checkpoints: weights_only loading, code-running pickles refused without running, task mismatches refused.

Everything goes through `seqlab predict` / `seqlab evaluate` in a copy that holds trained kth and binary_add
models. A control test proves the crafted payloads do run code when loaded unsafely, so the refusal tests
can fail.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from tests.support import clone_pipeline, one_error_line, run, sha256


class _RunsCode:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory):
    return clone_pipeline(pipeline_template, tmp_path_factory.mktemp("checkpoints") / "repo")


@pytest.fixture(scope="module")
def evil(repo, tmp_path_factory):
    """Crafted files -> the marker each would create if it ever got unpickled."""
    d = tmp_path_factory.mktemp("evil")
    files = {}
    # 1. A torch zip checkpoint that looks like ours (format tag, task) with the payload in its state.
    path, marker = d / "evil-torch.pt", d / "ran-torch"
    torch.save({"format": "seqlab-checkpoint/1", "task": "kth", "config": {}, "model_state": _RunsCode(marker)}, path)
    files[path] = marker
    # 2. A plain pickle (legacy format), the payload at the top level.
    path, marker = d / "evil-pickle.pt", d / "ran-pickle"
    path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    files[path] = marker
    # 3. A plain pickle in protocol 4, whose framing the safe loader rejects before it even sees the payload.
    path, marker = d / "evil-pickle4.pt", d / "ran-pickle4"
    path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=4))
    files[path] = marker
    # 4. The real kth model with a payload added next to its weights.
    path, marker = d / "evil-inside-real.pt", d / "ran-inside"
    ckpt = torch.load(repo / "models/kth.pt", weights_only=True)
    ckpt["meta"]["note"] = _RunsCode(marker)
    torch.save(ckpt, path)
    files[path] = marker
    return files


def test_control_payloads_do_run_code_when_loaded_unsafely(evil, tmp_path):
    copies = [shutil.copy(path, tmp_path / path.name) for path in evil]
    # A plain pickle runs its payload, then fails torch's magic-number check: keep going to the next file.
    script = ("import sys, torch\nfor f in sys.argv[1:]:\n    try:\n        torch.load(f, weights_only=False)\n"
              "    except Exception:\n        pass\n")
    subprocess.run([sys.executable, "-c", script, *map(str, copies)], check=False, capture_output=True, timeout=300)
    for path, marker in evil.items():
        assert marker.exists(), f"{path.name}: the payload is inert, so the refusal test proves nothing"
        marker.unlink()


def test_trained_models_load_with_weights_only(repo):
    for name in ("kth", "binary_add"):
        ckpt = torch.load(repo / f"models/{name}.pt", weights_only=True)
        assert ckpt["task"] == name and ckpt["format"] == "seqlab-checkpoint/1"
    out = run(["seqlab", "predict", "kth"], repo, input="9 7 0 5 6\n")
    assert out.stdout.strip() in list("0123456789")


@pytest.mark.parametrize("command", [["predict", "kth"], ["evaluate", "kth"]])
def test_code_running_checkpoints_are_refused_and_never_run(repo, evil, command):
    model = repo / "models/kth.pt"
    original = model.read_bytes()
    try:
        for path, marker in evil.items():
            if command[0] == "evaluate" and path.name != "evil-inside-real.pt":
                continue  # one file is enough to show evaluate goes through the same loader
            if command[0] == "predict":
                proc = run(["seqlab", *command, "--model", str(path)], repo, check=False, input="1 2 3\n")
            else:  # evaluate reads the pipeline's model file: swap the crafted one in
                shutil.copy(path, model)
                proc = run(["seqlab", *command], repo, check=False)
            line = one_error_line(proc)
            assert "refused" in line, line
            if "pickle4" not in path.name:  # the loader names the code it would have run
                assert "could run code" in line and "posix.system" in line, line
            assert "weights_only` set to `False`" not in line  # no advice to do the unsafe thing
            assert not marker.exists(), f"{path.name} ran code"
            assert proc.stdout.strip() == ""
    finally:
        model.write_bytes(original)


@pytest.mark.parametrize("task, model, inputs", [
    ("binary_add", "models/kth.pt", []),
    ("kth", "models/binary_add.pt", []),
    ("ocr", "models/kth.pt", ["word.png"]),
])
def test_other_tasks_checkpoint_is_refused(repo, task, model, inputs):
    proc = run(["seqlab", "predict", task, "--model", model, *inputs], repo, check=False, input="1 0\n")
    line = one_error_line(proc)
    expected = model.split("/")[1].removesuffix(".pt")
    assert f"checkpoint is for task {expected!r}, not {task!r}" in line, line


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, expected", [
    ("truncated", "not a readable checkpoint: a damaged or truncated PyTorch archive"),
    ("empty", "not a seqlab checkpoint (empty file)"),
    ("text", "not a seqlab checkpoint (not a PyTorch archive)"),
    ("foreign-torch-file", "not a seqlab checkpoint"),
    ("weights-do-not-fit-config", "weights do not match the model config"),
    ("directory", "checkpoint not found"),
    ("missing", "checkpoint not found"),
])
def test_unusable_checkpoints_fail_with_one_line(repo, tmp_path, case, expected):
    real = (repo / "models/kth.pt").read_bytes()
    if case == "truncated":
        path = _write(tmp_path / "m.pt", real[: len(real) // 2])
    elif case == "empty":
        path = _write(tmp_path / "m.pt", b"")
    elif case == "text":
        path = _write(tmp_path / "m.pt", b"not a checkpoint\n")
    elif case == "foreign-torch-file":
        path = tmp_path / "m.pt"
        torch.save({"weight": torch.zeros(3)}, path)
    elif case == "weights-do-not-fit-config":
        ckpt = torch.load(repo / "models/kth.pt", weights_only=True)
        ckpt["config"]["model"]["hidden_size"] += 1
        path = tmp_path / "m.pt"
        torch.save(ckpt, path)
    elif case == "directory":
        path = tmp_path
    else:
        path = tmp_path / "nope.pt"
    line = one_error_line(run(["seqlab", "predict", "kth", "--model", str(path)], repo, check=False, input="1 2 3\n"))
    assert expected in line, line
    assert sha256(repo / "models/kth.pt") == hashlib.sha256(real).hexdigest()
