"""Fault injection, interrupted training: kill -9 mid-epoch, rerun, and get exactly the uninterrupted result.

The e2e test kills `dvc repro train@kth` (the whole process group, SIGKILL) during epoch 3, reruns the pipeline
and compares the model bytes, train/eval metrics and the MLflow run with an uninterrupted run in another copy.
kth has no dropout, so two in-process tests cover what it cannot: the RNG states (a dropout model, with a
control run that skips restoring them and must differ) and a kill between an early stop and the outputs.
OCR trains with augmentation drawn fresh per sample and epoch: `seqlab train ocr` is killed with SIGKILL and
rerun (no DVC), and an in-process run checks that a resume file of other augmentation settings is not used.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.support import (
    SANDBOX,
    clone_pipeline,
    kill_after_first_epoch,
    leftover_temps,
    lock_outs,
    read_json,
    read_params,
    run,
    sandbox_env,
    sha256,
    tiny_params,
    without_timing,
    write_params,
)

EPOCHS = 8  # room for the kill to land in any of epochs 3-8 on a loaded machine


def _resume_files(root: Path) -> list[Path]:
    return sorted((root / ".seqlab" / "resume").glob("kth-*.pt"))


def _saved_epoch(root: Path) -> int:
    files = _resume_files(root)
    if not files:
        return 0
    try:
        return torch.load(files[0], weights_only=True)["loop_state"]["epoch"]
    except (OSError, RuntimeError, EOFError):  # replaced between glob and open
        return 0


def _runs(root: Path, experiment: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(root / "mlflow.db")
    try:
        return db.execute("SELECT r.run_uuid, r.status FROM runs r JOIN experiments e USING (experiment_id) "
                          "WHERE e.name = ?", (experiment,)).fetchall()
    finally:
        db.close()


def _metric_history(root: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    db = sqlite3.connect(root / "mlflow.db")
    try:
        return db.execute("SELECT step, value FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp",
                          (run_id, key)).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def copies(pipeline_template, tmp_path_factory):
    """Two copies with the same params: enough kth data that an epoch lasts seconds, 4 epochs, no early stop."""
    first = clone_pipeline(pipeline_template, tmp_path_factory.mktemp("resume-a") / "repo")
    params = read_params(first)
    params["kth"]["data"].update(n_train=3000)
    params["kth"]["train"].update(epochs=EPOCHS, patience=EPOCHS)
    write_params(first, params)
    run(["dvc", "repro", "generate@kth"], first)
    second = first.parent.parent / "resume-b"
    shutil.copytree(first, second, symlinks=True)
    return first, second


def test_kill_9_mid_epoch_then_rerun_matches_uninterrupted(copies):
    killed, clean = copies
    # The uninterrupted reference runs alongside (it only has to finish, not to be timed).
    reference = subprocess.Popen(["dvc", "repro", "evaluate@kth"], cwd=clean, env=sandbox_env(clean / SANDBOX),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen(["dvc", "repro", "train@kth"], cwd=killed, env=sandbox_env(killed / SANDBOX), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # Killed as soon as a checkpoint is on disk (the event, not a delay after it): the kill lands in
        # a later epoch, which one depends on the machine's load, and any of them must resume exactly.
        while _saved_epoch(killed) < 2:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of epoch 2 within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = torch.load(_resume_files(killed)[0], weights_only=True)
    saved = state["loop_state"]["epoch"]
    assert 2 <= saved < EPOCHS, f"the kill landed after epoch {saved} of {EPOCHS}; make epochs longer"
    killed_run_id = state["loop_state"]["run_id"]
    assert not (killed / "models/kth.pt").exists()
    assert [s for _, s in _runs(killed, "seqlab-kth")] == ["RUNNING"]  # a kill -9 cannot close the run

    rerun = run(["dvc", "repro", "evaluate@kth"], killed)
    assert f"resuming after epoch {saved}" in rerun.stdout + rerun.stderr
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out[-3000:]

    # Same bytes and metrics as the uninterrupted run.
    assert sha256(killed / "models/kth.pt") == sha256(clean / "models/kth.pt")
    assert lock_outs(killed)["train@kth:models/kth.pt"] == lock_outs(clean)["train@kth:models/kth.pt"]
    assert (killed / "metrics/kth/history.csv").read_text() == (clean / "metrics/kth/history.csv").read_text()
    train_killed, train_clean = (read_json(r / "metrics/kth/train.json") for r in (killed, clean))
    assert len((killed / "metrics/kth/history.csv").read_text().splitlines()) == 1 + EPOCHS  # a row per epoch
    assert without_timing(train_killed) == without_timing(train_clean)
    assert read_json(killed / "metrics/kth/eval.json") == read_json(clean / "metrics/kth/eval.json")

    # One MLflow run, resumed (not duplicated), complete, finished, with the same curve as the clean run.
    assert _runs(killed, "seqlab-kth") == [(killed_run_id, "FINISHED")]
    (clean_run_id, _), = _runs(clean, "seqlab-kth")
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        history = _metric_history(killed, killed_run_id, key)
        assert [step for step, _ in history] == list(range(1, EPOCHS + 1)), (key, history)
        assert history == _metric_history(clean, clean_run_id, key)
    assert _metric_history(killed, killed_run_id, "test.accuracy")  # evaluate found the resumed run

    # Nothing half-written survives: no temporary files, and the resume checkpoint is gone after success.
    assert leftover_temps(killed) == [] and _resume_files(killed) == []


def test_stale_temp_file_of_a_killed_writer_is_removed(copies):
    """A write killed between create and rename leaves `.<name>.<pid>.<rand>.tmp`; the next write removes it."""
    killed, _ = copies
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = killed / "data" / f".params.ok.{dead.pid}.abcd1234.tmp"
    stale.write_text("params.yaml is va")
    live = killed / "data" / f".params.ok.{os.getpid()}.efgh5678.tmp"  # a writer that is still running
    live.write_text("")
    run(["dvc", "repro", "-f", "-s", "validate"], killed)  # the stage rewrites data/params.ok
    assert not stale.exists() and live.exists()
    live.unlink()


# --- in-process: RNG restore and early stop ---------------------------------------------------------------


class _Dropped(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.inner(F.dropout(x, 0.3, self.training), lengths)


def _dropout_task():
    from seqlab.tasks.sequence.kth import KthTask

    class DropoutKth(KthTask):
        def build_model(self, model, meta):
            return _Dropped(super().build_model(model, meta))

    return DropoutKth()


class _Interrupt(KeyboardInterrupt):
    pass


def _fresh_dir(tmp_path: Path, name: str, monkeypatch) -> Path:
    """A scratch repo root for an in-process run: cwd, DVC_ROOT and the MLflow store all inside it."""
    root = tmp_path / name
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def _params(**train):
    from seqlab.core.config import parse_params

    p = tiny_params()
    p["kth"]["train"].update(train)
    return parse_params(p)


def _generate(params) -> None:
    from seqlab.tasks.sequence.kth import KthTask

    KthTask.generate(params.kth.data, params.seed)


def _train(task, params) -> dict:
    from seqlab.training.loop import train

    return train(task, params.seed, params.kth)


def _final_state(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "models" / "kth.pt", weights_only=True)["model_state"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _interrupt_loss_at(task, call: int) -> None:
    """Make the task's `call`-th loss computation raise _Interrupt (a kill between two training steps)."""
    calls = {"n": 0}
    loss = task.loss

    def failing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == call:
            raise _Interrupt()
        return loss(model, batch)

    task.loss = failing_loss


def _run_interrupted(params, interrupt_at_call: int) -> None:
    task = _dropout_task()
    _interrupt_loss_at(task, interrupt_at_call)
    with pytest.raises(_Interrupt):
        _train(task, params)


def test_resume_restores_rng_for_dropout(tmp_path, monkeypatch):
    import seqlab.training.loop as training

    params = _params(epochs=3, patience=3)
    steps = -(-params.kth.data.n_train // params.kth.train.batch_size)

    clean = _fresh_dir(tmp_path, "clean", monkeypatch)
    _generate(params)
    clean_summary = _train(_dropout_task(), params)
    reference = _final_state(clean)

    for name, restore in (("resumed", True), ("resumed-without-rng", False)):
        root = _fresh_dir(tmp_path, name, monkeypatch)
        shutil.copytree(clean / "data", root / "data")
        _run_interrupted(params, interrupt_at_call=steps + 2)  # second batch of epoch 2
        with monkeypatch.context() as m:
            if not restore:
                m.setattr(training, "set_rng_state", lambda state: None)
            summary = _train(_dropout_task(), params)
        if restore:
            assert _same(_final_state(root), reference)
            assert without_timing(summary) == without_timing(clean_summary)
        else:  # control: the comparison above is sensitive to the RNG state
            assert not _same(_final_state(root), reference)


def test_resume_after_early_stop_does_not_train_more(tmp_path, monkeypatch):
    import seqlab.training.loop as training
    from seqlab.tasks.sequence.kth import KthTask

    params = _params(lr=0.05, scheduler="constant", patience=1, epochs=8)
    clean = _fresh_dir(tmp_path, "clean", monkeypatch)
    _generate(params)
    clean_summary = _train(KthTask(), params)
    assert clean_summary["epochs_run"] < 8, "precondition: this config must stop early"

    root = _fresh_dir(tmp_path, "killed", monkeypatch)
    shutil.copytree(clean / "data", root / "data")
    real_write = training._write_outputs

    def killed_before_outputs(*args, **kwargs):
        raise _Interrupt()

    monkeypatch.setattr(training, "_write_outputs", killed_before_outputs)
    with pytest.raises(_Interrupt):
        _train(KthTask(), params)
    monkeypatch.setattr(training, "_write_outputs", real_write)
    summary = _train(KthTask(), params)
    assert summary["epochs_run"] == clean_summary["epochs_run"]
    assert without_timing(summary) == without_timing(clean_summary)
    assert _same(_final_state(root), _final_state(clean))


def test_resume_checkpoint_has_everything(tmp_path, monkeypatch):
    """The per-epoch checkpoint holds model, optimizer, scheduler, RNG and loop state, and loads weights_only."""
    from seqlab.core.checkpoint import load_checkpoint

    params = _params(epochs=3, patience=3)
    root = _fresh_dir(tmp_path, "ckpt", monkeypatch)
    _generate(params)
    steps = -(-params.kth.data.n_train // params.kth.train.batch_size)
    _run_interrupted(params, interrupt_at_call=steps + 1)
    (path,) = (root / ".seqlab" / "resume").glob("kth-*.pt")
    ckpt = load_checkpoint(path, "kth")
    assert {"model_state", "optimizer_state", "scheduler_state", "rng_state", "loop_state"} <= ckpt.keys()
    assert ckpt["loop_state"]["epoch"] == 1 and ckpt["loop_state"]["run_id"]
    assert ckpt["scheduler_state"]["last_epoch"] == steps
    assert leftover_temps(root) == []


# --- in-process: OCR with augmentation ----------------------------------------------------------------------

OCR_VARIANT = "crnn"


def _ocr_raw_params(**augment) -> dict:
    """tiny_params' OCR run (augmentation on, as params.yaml has it) with a small CRNN, 3 epochs, no early stop."""
    p = tiny_params()
    p["ocr"][OCR_VARIANT]["model"].update(channels=[8, 16, 32], hidden_size=32)
    p["ocr"][OCR_VARIANT]["train"].update(epochs=3, patience=3, batch_size=16, device="cpu")
    p["ocr"]["augment"].update(augment)
    return p


def _ocr_params(**augment):
    from seqlab.core.config import parse_params

    params = parse_params(_ocr_raw_params(**augment))
    assert params.ocr.augment.enabled
    return params


def _ocr_data(root: Path, height: int, n_train: int = 48) -> None:
    """Word images drawn with Pillow's own font (no trdg, so fast and font-independent), in the data format."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from seqlab.tasks.ocr.charset import Charset
    from seqlab.tasks.ocr.data import save_split, write_meta

    font = ImageFont.load_default(size=height * 2 // 3)
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    for split, count in (("train", n_train), ("val", 16)):
        texts = ["".join(rng.choice(alphabet, size=int(rng.integers(2, 7)))) for _ in range(count)]
        images = []
        for text in texts:
            im = Image.new("L", (int(font.getlength(text)) + 8, height), 255)
            ImageDraw.Draw(im).text((4, height // 8), text, fill=0, font=font)
            images.append(np.asarray(im))
        save_split(root / "data" / "ocr" / f"{split}.npz", images, texts, ["default"] * count, height)
    write_meta(root / "data" / "ocr", Charset.from_name("digits_lower"), height)


def _train_ocr(params, interrupt_at_call: int | None = None) -> dict:
    from seqlab.tasks.ocr.recognizer.task import OcrTask
    from seqlab.training.loop import train

    section = params.section("ocr").run(OCR_VARIANT)
    task = OcrTask.for_training(section, OCR_VARIANT)
    assert task.augment == params.ocr.augment  # the training batches are augmented
    if interrupt_at_call is None:
        return train(task, params.seed, section)
    _interrupt_loss_at(task, interrupt_at_call)
    with pytest.raises(_Interrupt):
        train(task, params.seed, section)
    return {}


def test_ocr_resume_with_augmentation_is_byte_identical(tmp_path, monkeypatch, capsys, one_thread):
    """OCR trained with augmentation, interrupted in epoch 2 and resumed, writes the uninterrupted model's bytes.

    A resume file written under other augmentation settings is not picked up (control: those settings give
    another model, so the byte comparison does see the augmentation).
    """
    params = _ocr_params()
    model_file = Path("models") / f"ocr-{OCR_VARIANT}.pt"
    steps = -(-48 // params.ocr.crnn.train.batch_size)

    clean = _fresh_dir(tmp_path, "clean", monkeypatch)
    _ocr_data(clean, params.ocr.data.height)
    clean_summary = _train_ocr(params)
    reference = sha256(clean / model_file)

    root = _fresh_dir(tmp_path, "killed", monkeypatch)
    shutil.copytree(clean / "data", root / "data")
    _train_ocr(params, interrupt_at_call=steps + 2)  # second batch of epoch 2
    (resume_file,) = (root / ".seqlab" / "resume").glob(f"ocr-{OCR_VARIANT}-*.pt")
    assert torch.load(resume_file, weights_only=True)["loop_state"]["epoch"] == 1
    capsys.readouterr()

    other = _ocr_params(p_identity=1.0)  # every sample left as rendered: augmentation off in effect
    _train_ocr(other)
    assert "resuming" not in capsys.readouterr().err
    assert sha256(root / model_file) != reference
    assert resume_file.exists()  # still there for the settings it belongs to

    summary = _train_ocr(params)
    assert "resuming after epoch 1" in capsys.readouterr().err
    assert sha256(root / model_file) == reference
    assert without_timing(summary) == without_timing(clean_summary)
    assert not resume_file.exists() and leftover_temps(root) == []


def test_ocr_kill_9_then_rerun_writes_the_uninterrupted_model(tmp_path):
    """`seqlab train ocr` with augmentation, killed with SIGKILL after its epoch-1 checkpoint and run again,
    writes the bytes, history and summary of an uninterrupted run (the stage command itself, without DVC)."""
    import sys

    raw = _ocr_raw_params()
    assert raw["ocr"]["augment"]["enabled"]
    roots = []
    for name in ("ocr-clean", "ocr-killed"):
        root = tmp_path / name
        (root / ".git").mkdir(parents=True)  # the repo root: .seqlab/ and mlflow.db go here
        write_params(root, raw)
        _ocr_data(root, raw["ocr"]["data"]["height"], n_train=160)  # 10 batches an epoch: time to kill
        roots.append(root)
    clean, killed = roots
    cmd = [sys.executable, "-m", "seqlab.cli", "train", "ocr", "--variant", OCR_VARIANT]
    one_thread = {"OMP_NUM_THREADS": "1"}  # both runs side by side on a small, busy machine
    reference = kill_after_first_epoch(cmd, clean, killed, one_thread, f"ocr-{OCR_VARIANT}-*.pt", "training")
    resume_dir = killed / ".seqlab" / "resume"
    model_file = Path("models") / f"ocr-{OCR_VARIANT}.pt"
    assert not (killed / model_file).exists()

    rerun = run(cmd, killed, env=sandbox_env(killed / SANDBOX, **one_thread))
    assert "resuming after epoch" in rerun.stderr
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out[-3000:]
    assert sha256(killed / model_file) == sha256(clean / model_file)
    history = Path("metrics") / f"ocr-{OCR_VARIANT}" / "history.csv"
    assert (killed / history).read_text() == (clean / history).read_text()
    train_json = Path("metrics") / f"ocr-{OCR_VARIANT}" / "train.json"
    assert without_timing(read_json(killed / train_json)) == without_timing(read_json(clean / train_json))
    assert len((killed / history).read_text().splitlines()) == 1 + 3  # a row per epoch
    assert leftover_temps(killed) == [] and not list(resume_dir.glob("*.pt"))
