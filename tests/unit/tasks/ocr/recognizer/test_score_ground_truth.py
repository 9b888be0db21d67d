"""`seqlab evaluate ocr --gt DIR` end to end (in-process through the CLI's main) with a tiny untrained CRNN:
the table's figures are the scorer's on what predict reads, bad ground truth exits 1 with a line per problem,
--drop-bad says how many it dropped, --grid writes the grids, Tesseract reads the same lines when installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from seqlab.cli import main
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.recognizer.char_lm import build_language_model
from seqlab.tasks.ocr.recognizer.metrics import cer, wer
from seqlab.tasks.ocr.recognizer.tesseract import is_available
from tests.support import REPO, tiny_ocr_checkpoint
from tests.unit.tasks.ocr.documents.test_ground_truth import write_pair

HEIGHT = 32
TEXTS = ["The quick brown fox", "jumps over 12 lazy dogs.", "Hello, world!"]


def tiny_checkpoint(path: Path) -> Path:
    """An untrained CRNN over the english charset, saved as training saves one."""
    return tiny_ocr_checkpoint(path, Charset.from_name("english").chars, HEIGHT)


@pytest.fixture
def gt(tmp_path: Path) -> Path:
    for i, text in enumerate(TEXTS):
        write_pair(tmp_path / "gt", f"line{i}", text)
    return tmp_path / "gt"


def table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.strip().splitlines()
    assert lines[0] == "| engine | lines | CER | CER, case-insensitive | WER | lines/s |" and lines[1].startswith("|---")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: row[1:] for row in rows}


def test_evaluate_gt_scores_what_predict_reads(gt, tmp_path, capsys):
    from seqlab.core.checkpoint import load_model

    model = tiny_checkpoint(tmp_path / "tiny.pt")
    grid = tmp_path / "out" / "grid.png"
    assert main(["evaluate", "ocr", "--gt", str(gt), "--model", str(model), "--no-tesseract", "--greedy",
                 "--grid", str(grid)]) == 0
    out = capsys.readouterr()
    rows = table_rows(out.out)
    assert list(rows) == [str(model)]  # the model only
    count, model_cer, nocase, model_wer, _ = rows[str(model)]

    task, net, ckpt = load_model(model, "ocr")
    paths = [str(gt / f"line{i}.png") for i in range(len(TEXTS))]
    preds = [a.text or "" for a in task.answers(net, ckpt["config"]["meta"], paths)]
    assert count == "3"
    assert model_cer == f"{100 * cer(preds, TEXTS):.2f}%"
    assert nocase == f"{100 * cer([p.lower() for p in preds], [t.lower() for t in TEXTS]):.2f}%"
    assert model_wer == f"{100 * wer(preds, TEXTS):.1f}%"
    assert Image.open(grid).size[0] > 0 and not (tmp_path / "out" / "grid-tesseract.png").exists()
    assert f"prediction grid written to {grid}" in out.err


def test_evaluate_gt_decodes_as_predict(gt, tmp_path, monkeypatch, capsys):
    """Without --greedy, the lines are read with params.yaml's ocr.decode and the language model beside the
    models, as predict reads them: a long-winded beam whose texts differ from greedy decoding's."""
    monkeypatch.chdir(tmp_path)
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ocr"]["decode"].update(method="beam", beam_width=4, lm_weight=1.0, length_bonus=5.0, lm_order=3,
                                   lm_gate=None)  # an untrained model reads noise: the gate would keep it greedy
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    build_language_model(["abc abc", "The cat sat."] * 10, Charset.from_name("english"), 3,
                         tmp_path / "models" / "ocr-lm.npz")
    images = [str(gt / f"line{i}.png") for i in range(len(TEXTS))]

    def predicted(*flags: str) -> list[str]:
        assert main(["predict", "ocr", *flags, "--model", str(model), *images]) == 0
        return [line.split("\t", 1)[1] for line in capsys.readouterr().out.splitlines()]

    beam, greedy = predicted(), predicted("--greedy")
    assert f"{100 * cer(beam, TEXTS):.2f}%" != f"{100 * cer(greedy, TEXTS):.2f}%"  # else it could not tell them apart
    for flags, preds in (((), beam), (("--greedy",), greedy)):
        assert main(["evaluate", "ocr", "--gt", str(gt), "--model", str(model), "--no-tesseract", *flags]) == 0
        assert table_rows(capsys.readouterr().out)[str(model)][1] == f"{100 * cer(preds, TEXTS):.2f}%", flags


def test_bad_ground_truth_exits_1_unless_dropped(gt, tmp_path, capsys):
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    write_pair(gt, "accent", "d\u00e9j\u00e0 vu")
    (gt / "orphan.gt.txt").write_text("no image\n")
    args = ["evaluate", "ocr", "--gt", str(gt), "--model", str(model), "--no-tesseract", "--greedy"]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"seqlab: error: 2 problems in the ground truth {gt} (5 lines; fix them, or drop those lines "
                   "with --drop-bad):",
                   "orphan.gt.txt: no line image beside it (orphan with one of .png, .bin.png, .nrm.png, .tif, .tiff, "
                   ".jpg, .jpeg)",
                   "characters outside the charset english: '\u00e9' x1, '\u00e0' x1 (in 1 line: accent)"]

    assert main([*args, "--drop-bad"]) == 0
    out = capsys.readouterr()
    assert f"{gt}: dropped 2 of 5 lines (1 without image, 1 with characters outside the charset)" in out.err
    assert table_rows(out.out)[str(model)][0] == "3"


def test_gt_options_need_gt_and_ocr(tmp_path, capsys):
    assert main(["evaluate", "ocr", "--no-tesseract"]) == 1
    assert "--no-tesseract: only with --gt DIR" in capsys.readouterr().err
    assert main(["evaluate", "ocr", "--greedy"]) == 1
    assert "--greedy: only with --gt DIR" in capsys.readouterr().err
    assert main(["evaluate", "kth", "--gt", str(tmp_path)]) == 1
    assert "--gt scores OCR models on transcribed lines, not kth" in capsys.readouterr().err


@pytest.mark.skipif(not is_available()[0], reason="tesserocr / eng.traineddata not installed")
def test_tesseract_reads_the_same_lines(gt, tmp_path, capsys):
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    grid = tmp_path / "grid.png"
    assert main(["evaluate", "ocr", "--gt", str(gt), "--model", str(model), "--greedy", "--grid", str(grid)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert list(rows) == [str(model), "Tesseract (PSM 7)"]
    count, tess_cer, *_ = rows["Tesseract (PSM 7)"]
    assert count == "3" and float(tess_cer.rstrip("%")) < 10  # clean rendered lines: Tesseract reads them
    assert (tmp_path / "grid-tesseract.png").is_file()
