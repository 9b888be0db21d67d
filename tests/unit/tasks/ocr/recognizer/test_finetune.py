"""Fine-tuning (`seqlab finetune ocr`): charset extension keeps the old classes' logits, the hold-out, the params
section's errors, a whole run on a tiny checkpoint and ground-truth folder, and kill -9 + resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from seqlab.core.checkpoint import load_checkpoint, save_checkpoint
from seqlab.core.config import parse_params
from seqlab.core.errors import ParamsError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import ColumnBiLSTMConfig, CRNNConfig
from seqlab.tasks.ocr.data import save_split, write_meta
from seqlab.tasks.ocr.documents.ground_truth import GtLine
from seqlab.tasks.ocr.recognizer.char_lm import build_language_model
from seqlab.tasks.ocr.recognizer.finetune import hold_out
from seqlab.tasks.ocr.recognizer.models import CRNN, ColumnBiLSTM, extend_classes, model_config
from tests.support import (
    SANDBOX,
    kill_after_first_epoch,
    read_json,
    read_params,
    run,
    sandbox_env,
    sha256,
    tiny_params,
    write_params,
)

CHARSET = "digits_lower"
HEIGHT = 32
MODEL = {"channels": [8, 16, 32], "hidden_size": 32, "num_layers": 1, "downsample": 4, "pool": "stride",
         "frames_per_step": 2, "dropout": 0.0, "collapse": "conv", "input_height": 0}
ALPHABET = "abcdefghij+"  # '+' is not in digits_lower: the charset must grow by it


# --- charset extension ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda n: CRNN(model_config(CRNNConfig, channels=[8, 16], hidden_size=16, frames_per_step=2), n, HEIGHT),
    lambda n: ColumnBiLSTM(model_config(ColumnBiLSTMConfig, hidden_size=16, projection=8, frames_per_step=3), n,
                           HEIGHT),
], ids=["crnn", "bilstm"])
def test_extending_the_classes_leaves_the_old_logits_unchanged(make) -> None:
    torch.manual_seed(0)
    old = 11
    model = make(old).eval()
    images, widths = torch.rand(3, 1, HEIGHT, 64), torch.tensor([64, 40, 23])
    logits = {}
    model.fc.register_forward_hook(lambda m, i, out: logits.__setitem__("before", out.detach().clone()))
    with torch.no_grad():
        model(images, widths)
    extend_classes(model, 4)
    model.fc.register_forward_hook(lambda m, i, out: logits.__setitem__("after", out.detach().clone()))
    with torch.no_grad():
        log_probs, _ = model(images, widths)
    frames = model.frames
    before = logits["before"].view(*logits["before"].shape[:2], frames, old)
    after = logits["after"].view(*logits["after"].shape[:2], frames, old + 4)
    assert torch.equal(after[..., :old], before)  # every old class's logit, in every CTC frame, exactly
    assert not torch.equal(after[..., old:], torch.zeros_like(after[..., old:]))  # new rows are initialised
    assert log_probs.shape[-1] == old + 4
    # the grown model has the shapes of a model built for the new class count: its checkpoint loads as any other
    make(old + 4).load_state_dict(model.state_dict())


def test_extended_charset_keeps_every_old_index() -> None:
    old = Charset.from_name("english")
    assert old.missing(["Café  déjà", "vu"]) == "àé"
    new = old.extended("éà")
    assert new.chars == old.chars + "éà" and new.encode("A bé") == [*old.encode("A b"), len(old) + 1]
    assert old.extended("") is old and Charset.from_name(new.chars) == new  # saved as characters, loads back


def test_hold_out_is_seeded_by_line_and_keeps_a_line_on_each_side() -> None:
    lines = [GtLine(f"l{i}", np.zeros((4, 4), np.uint8), f"t{i}") for i in range(10)]
    train, val = hold_out(lines, 0.2, seed=1)
    assert len(val) == 2 and {ln.name for ln in train} | {ln.name for ln in val} == {ln.name for ln in lines}
    assert hold_out(lines, 0.2, seed=1) == (train, val)
    assert hold_out(lines, 0.2, seed=2) != (train, val)
    assert [len(part) for part in hold_out(lines[:2], 0.9, seed=1)] == [1, 1]


# --- the params section -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "message"), [
    ("val_share", 0, "ocr.finetune.val_share must be > 0 (got 0)"),
    ("synthetic_share", 1.0, "ocr.finetune.synthetic_share must be < 1 (got 1.0)"),
    ("lr", -1.0, "ocr.finetune.lr must be > 0 (got -1.0)"),
    ("extend_charset", "yes", "ocr.finetune.extend_charset must be true or false (got 'yes')"),
    ("epochs", None, "ocr.finetune.epochs and ocr.finetune.minutes are both null"),
    ("test_gts", "x", "ocr.finetune.test_gts is not a known key (did you mean ocr.finetune.test_gt?)"),
])
def test_section_errors_name_the_key(key, value, message) -> None:
    raw = tiny_params()
    raw["ocr"]["finetune"]["minutes"] = None
    raw["ocr"]["finetune"][key] = value
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    assert str(caught.value).startswith(message)


def test_a_flag_is_validated_as_its_key(tmp_path, monkeypatch, capsys) -> None:
    from seqlab.cli import main

    write_params(tmp_path, tiny_params())
    monkeypatch.chdir(tmp_path)
    assert main(["finetune", "ocr", "--out", "m.pt", "--epochs", "0"]) == 1
    assert "ocr.finetune.epochs must be >= 1 (got 0)" in capsys.readouterr().err


# --- a whole run ------------------------------------------------------------------------------------------------


def _line_image(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (right + 12, bottom + 10), 255)
    ImageDraw.Draw(im).text((6, 5), text, fill=0, font=font)
    return np.asarray(im)


def _texts(rng: np.random.Generator, count: int, alphabet: str) -> list[str]:
    return [" ".join("".join(rng.choice(list(alphabet), size=int(rng.integers(2, 5))))
                     for _ in range(int(rng.integers(1, 4)))) for _ in range(count)]


def make_repo(root: Path, gt_lines: int, synthetic: int = 32, **finetune) -> Path:
    """A repo root with a tiny random CRNN checkpoint (models/start.pt), synthetic training data (data/ocr), a
    ground-truth folder of rendered lines (gt/NAME.png + NAME.gt.txt) and params.yaml."""
    (root / ".git").mkdir(parents=True)  # the repository root: MLflow store and resume files go here
    rng = np.random.default_rng(0)
    font = ImageFont.load_default(size=22)
    (root / "gt").mkdir()
    for i, text in enumerate(_texts(rng, gt_lines, ALPHABET)):
        Image.fromarray(_line_image(text, font)).save(root / "gt" / f"line{i:03d}.png")
        (root / "gt" / f"line{i:03d}.gt.txt").write_text(text + "\n", encoding="utf-8")
    texts = _texts(rng, synthetic, "abcdefghij")
    images = [np.asarray(Image.fromarray(im).resize((round(im.shape[1] * HEIGHT / im.shape[0]), HEIGHT)))
              for im in (_line_image(t, ImageFont.load_default(size=20)) for t in texts)]
    save_split(root / "data" / "ocr" / "train.npz", images, texts, ["default"] * len(texts), HEIGHT)
    write_meta(root / "data" / "ocr", Charset.from_name(CHARSET), HEIGHT)
    torch.manual_seed(0)
    model = CRNN(model_config(CRNNConfig, **MODEL), Charset.from_name(CHARSET).num_classes, HEIGHT)
    save_checkpoint(root / "models" / "start.pt", {
        "task": "ocr", "variant": "crnn", "config": {
            "task": "ocr", "variant": "crnn", "seed": 0, "model": MODEL, "train": {},
            "meta": {"charset": Charset.from_name(CHARSET).chars, "height": HEIGHT}},
        "model_state": model.state_dict(), "meta": {}})
    # the ocr-lm stage's language model: before and after are scored, and the MLflow model reads, as predict does
    build_language_model(texts, Charset.from_name(CHARSET), 3, root / "models" / "ocr-lm.npz")
    raw = tiny_params()
    raw["ocr"]["finetune"].update({"gt": "gt", "epochs": 4, "minutes": None, "lr": 0.01, "batch_size": 8,
                                   "augment": False, "synthetic_share": 0.5, "val_share": 0.25, **finetune})
    write_params(root, raw)
    return root


FINETUNE = ["finetune", "ocr", "--from", "models/start.pt", "--out", "models/ft.pt"]


@pytest.mark.slow  # a whole fine-tuning run in-process: seconds
def test_finetune_writes_a_model_predict_reads_and_its_metrics(tmp_path, monkeypatch, capsys, one_thread) -> None:
    from seqlab.cli import main

    root = make_repo(tmp_path / "repo", gt_lines=12)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(FINETUNE) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "charset extended by 1 characters the ground truth needs: +" in err

    ckpt = load_checkpoint(root / "models" / "ft.pt", "ocr")
    assert ckpt["config"]["meta"]["charset"] == Charset.from_name(CHARSET).chars + "+"
    history = (root / "metrics" / "ft" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4
    losses = [float(row.split(",")[history[0].split(",").index("train_loss")]) for row in history[1:]]
    assert losses[-1] < losses[0]

    scores = read_json(root / "metrics" / "ft" / "eval.json")
    assert {"before", "after"} <= scores.keys() and set(scores["after"]) == {"cer", "cer_nocase", "wer"}
    summary = read_json(root / "metrics" / "ft" / "finetune.json")
    assert summary["added_chars"] == "+" and summary["train_lines"] == 9 and summary["val_lines"] == 3
    assert summary["synthetic_per_epoch"] == 9 and summary["epochs_run"] == 4 and summary["train_lines_per_s"] > 0
    assert (root / "metrics" / "ft" / "predictions.png").is_file()
    assert "tesseract" in scores or summary["tesseract"].startswith("skipped")

    line = next(iter(sorted((root / "gt").glob("*.png"))))
    assert main(["predict", "ocr", "--greedy", "--model", "models/ft.pt", str(line)]) == 0
    assert capsys.readouterr().out.startswith(f"{line}\t")

    from mlflow import MlflowClient

    from seqlab.tracking.runs import configure_mlflow

    configure_mlflow()
    version = MlflowClient().get_model_version_by_alias("seqlab-ft", "champion")
    assert float(version.tags["seqlab.test_value"]) == scores["after"]["cer"]
    import mlflow

    decode = mlflow.pyfunc.load_model("models:/seqlab-ft@champion").model_config["reading"]["decode"]
    assert decode == read_params(root)["ocr"]["decode"]  # the registered model decodes as predict
    assert not list((root / ".seqlab" / "resume").glob("*.pt"))


@pytest.mark.slow  # `seqlab finetune ocr` killed with SIGKILL and rerun, beside an uninterrupted run
def test_finetune_kill_9_then_rerun_writes_the_uninterrupted_model(tmp_path) -> None:
    roots = [make_repo(tmp_path / name, gt_lines=48, synthetic=64, epochs=5, augment=True)
             for name in ("clean", "killed")]
    clean, killed = roots
    cmd = [sys.executable, "-m", "seqlab.cli", *FINETUNE]
    env = {"OMP_NUM_THREADS": "1"}
    reference = kill_after_first_epoch(cmd, clean, killed, env, "ft-*.pt", "fine-tuning")
    resume_dir = killed / ".seqlab" / "resume"
    assert not (killed / "models" / "ft.pt").exists()

    rerun = run(cmd, killed, env=sandbox_env(killed / SANDBOX, **env))
    assert "resuming after epoch" in rerun.stderr
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out[-3000:]
    assert sha256(killed / "models" / "ft.pt") == sha256(clean / "models" / "ft.pt")
    history = Path("metrics") / "ft" / "history.csv"
    assert (killed / history).read_text() == (clean / history).read_text()
    assert json.loads((killed / "metrics/ft/eval.json").read_text()) == json.loads((clean / "metrics/ft/eval.json").read_text())
    assert not list(resume_dir.glob("*.pt"))
