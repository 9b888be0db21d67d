"""Corrupted or tampered data under data/: detected by the loader (one clear line) or by `dvc status`.

Every single-byte edit of an archive either fails to load with DataError or loads the very same arrays (the
edit hit a zip field that carries no data), and every edit shows up in `dvc status`. The stages then refuse
truncated, edited, replaced or missing files with `seqlab: error: ... corrupt ...` instead of training.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.support import clone_pipeline, one_error_line, run, tree_hashes


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory):
    return clone_pipeline(pipeline_template, tmp_path_factory.mktemp("data") / "repo")


def _arrays_equal(a, b):
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task, split, names", [("kth", "val", ("digits", "lengths", "targets", "k")),
                                                ("binary_add", "val", ("inputs", "sums", "lengths", "op_bits"))])
def test_every_single_byte_edit_is_caught_or_harmless(repo, tmp_path, task, split, names):
    from seqlab.core.errors import DataError
    from seqlab.core.storage import load_arrays

    raw = (repo / f"data/{task}/{split}.npz").read_bytes()
    reference = load_arrays(repo / f"data/{task}/{split}.npz")
    target = tmp_path / "edited.npz"
    outcomes = {"error": 0, "same": 0}
    for i in range(len(raw)):
        for flip in (0x01, 0xFF):
            edited = bytearray(raw)
            edited[i] ^= flip
            target.write_bytes(edited)
            try:
                arrays = load_arrays(target)
                loaded = {n: arrays[n] for n in names}  # what the task reads; a lost name is DataError too
            except DataError as exc:
                assert "\n" not in str(exc) and "corrupt" in str(exc)
                outcomes["error"] += 1
                continue
            assert _arrays_equal(loaded, {n: reference[n] for n in names}), f"byte {i} ^ {flip:#x} changed the data"
            outcomes["same"] += 1
    for cut in (0, 1, 22, len(raw) // 3, len(raw) // 2, len(raw) - 1):
        target.write_bytes(raw[:cut])
        with pytest.raises(DataError, match="corrupt or truncated"):
            load_arrays(target)
    assert outcomes["error"] > outcomes["same"] > 0, outcomes


def _tamper(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "byte-edited":
        edited = bytearray(raw)
        edited[len(raw) // 3] ^= 0x5A
        path.write_bytes(edited)
    elif how == "text":
        path.write_text("digits,lengths\n1,2\n")
    elif how == "deleted":
        path.unlink()


@pytest.mark.parametrize("task, split, command, how, fragment", [
    ("kth", "train", ["train", "kth"], "truncated", "corrupt or truncated"),
    ("kth", "train", ["train", "kth"], "byte-edited", "corrupt"),
    ("kth", "val", ["train", "kth"], "text", "corrupt or truncated (not a zip archive)"),
    ("kth", "test", ["evaluate", "kth"], "byte-edited", "corrupt"),
    ("binary_add", "train", ["train", "binary_add"], "truncated", "corrupt or truncated"),
    ("binary_add", "generalization", ["evaluate", "binary_add"], "deleted", "data file is missing"),
])
def test_stage_refuses_damaged_data_and_dvc_status_sees_it(repo, task, split, command, how, fragment):
    path = repo / f"data/{task}/{split}.npz"
    backup = path.read_bytes()
    outputs = tree_hashes(repo, "models", "metrics")
    _tamper(path, how)
    try:
        line = one_error_line(run(["seqlab", *command], repo, check=False, timeout=300))
        assert f"data/{task}/{split}.npz" in line and fragment in line, line
        assert tree_hashes(repo, "models", "metrics") == outputs  # nothing trained or written on garbage
        status = run(["dvc", "status", "--json"], repo).stdout
        changed = json.loads(status)
        assert any(f"data/{task}" in json.dumps(v) and ("modified" in json.dumps(v) or "deleted" in json.dumps(v))
                   for v in changed.values()), status
    finally:
        path.write_bytes(backup)
    assert f"data/{task}" not in run(["dvc", "status", "--json"], repo).stdout


def test_valid_but_swapped_archive_is_caught_by_dvc_status(repo):
    """A well-formed file with other contents loads fine; DVC's hash is what catches it."""
    train, val = repo / "data/kth/train.npz", repo / "data/kth/val.npz"
    backup = train.read_bytes()
    shutil.copy(val, train)
    try:
        status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
        assert "generate@kth" in status and "modified" in json.dumps(status["generate@kth"]), status
    finally:
        train.write_bytes(backup)
