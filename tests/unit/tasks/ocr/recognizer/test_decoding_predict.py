"""`seqlab predict ocr` decodes as params.yaml's `ocr.decode` says, with the language model beside the models,
and `--greedy` reads without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from seqlab.cli import main
from seqlab.core.checkpoint import load_model
from seqlab.core.config import load_params
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.images import load_word_image
from seqlab.tasks.ocr.recognizer.char_lm import build_language_model
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.decoding import decoder_for
from tests.support import REPO, tiny_ocr_checkpoint
from tests.unit.tasks.ocr.documents.test_pages import TEXTS, render

HEIGHT = 32
CHARSET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:()%"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a tiny model, a line image, a language model and params asking for a long-winded beam."""
    monkeypatch.chdir(tmp_path)
    tiny_ocr_checkpoint(tmp_path / "tiny.pt", CHARSET, HEIGHT)
    line, _ = render([(4, 6, TEXTS[:1])], (300, 32))
    Image.fromarray(line).save(tmp_path / "line.png")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # a large bonus per character: the beam's text then differs from greedy decoding's on an untrained model
    params["ocr"]["decode"].update(method="beam", beam_width=4, lm_weight=1.0, length_bonus=5.0, lm_order=3,
                                    lm_gate=None)  # an untrained model reads noise: the gate would keep it greedy
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _predict(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = main(["predict", "ocr", *flags, "--model", "tiny.pt", "line.png"])
    captured = capsys.readouterr()
    return code, captured.out.rstrip("\n").split("\t", 1)[-1], captured.err


def test_predict_decodes_with_the_params_and_the_language_model(project, capsys) -> None:
    task, model, _ = load_model(project / "tiny.pt", "ocr")
    build_language_model(["abc abc", "The cat sat."] * 10, task.charset, 3, project / "models" / "ocr-lm.npz")
    image = load_word_image(project / "line.png", HEIGHT)
    config = OcrConfig.of(load_params(project / "params.yaml", "ocr")).decode
    beam = CtcReader(model.eval(), task.charset, torch.device("cpu"), decoder_for(task.charset, config, project / "models" / "ocr-lm.npz")
    ).read([image])[0]
    greedy = CtcReader(model.eval(), task.charset, torch.device("cpu")).read([image])[0]
    assert beam != greedy  # else this test could not tell the two apart

    code, text, err = _predict(capsys)
    assert code == 0, err
    assert text == beam
    code, text, err = _predict(capsys, "--engine", "onnxruntime")  # the exported graph, decoded the same way
    assert code == 0, err
    assert text == beam
    code, text, err = _predict(capsys, "--greedy")
    assert code == 0, err
    assert text == greedy


def test_a_missing_language_model_is_one_line_naming_the_way_out(project, capsys) -> None:
    code, _, err = _predict(capsys)
    assert code == 1
    assert "models/ocr-lm.npz: language model not found" in err and "--greedy" in err
    assert _predict(capsys, "--greedy")[0] == 0
