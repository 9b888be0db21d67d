"""Pages through predict with a tiny untrained CRNN: one output line per text line, hOCR that parses with
boxes inside the page, line images answered exactly as before, both engines, and the read-pages stage."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from PIL import Image

from seqlab.cli import main
from seqlab.tasks.ocr.images import load_word_image
from tests.support import tiny_ocr_checkpoint
from tests.unit.tasks.ocr.documents.test_pages import TEXTS, render

HEIGHT = 32
CHARSET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:()%"
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ocr_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", CHARSET, HEIGHT)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    page, _ = render([(30, 40, TEXTS)], (420, 240))
    line, _ = render([(4, 6, TEXTS[:1])], (300, 32))
    out = {"page": d / "page.png", "line": d / "line.png"}
    Image.fromarray(page).save(out["page"])
    Image.fromarray(line).save(out["line"])
    return out


def predict(model: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["predict", "ocr", "--greedy", "--model", str(model), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_page_prints_one_line_per_text_line(model, images, capsys) -> None:
    code, out, err = predict(model, "--page", str(images["page"]), capsys=capsys)
    assert code == 0, err
    rows = out.splitlines()
    assert len(rows) == len(TEXTS) and all(r.startswith(f"{images['page']}\t") for r in rows)


def test_a_page_is_detected_without_the_flag_and_a_line_image_answers_as_before(model, images, capsys) -> None:
    import torch

    from seqlab.core.checkpoint import load_model
    from seqlab.tasks.ocr.recognizer.ctc import CtcReader

    code, out, _ = predict(model, str(images["line"]), str(images["page"]), capsys=capsys)
    assert code == 0
    rows = out.splitlines()
    task, net, _ = load_model(model, "ocr")
    (before,) = CtcReader(net, task.charset, torch.device("cpu")).read([load_word_image(images["line"], HEIGHT)])
    assert rows[0] == f"{images['line']}\t{before}"  # the line-image path, byte for byte
    assert len(rows) == 1 + len(TEXTS)


def test_hocr_is_well_formed_with_boxes_inside_the_page(model, images, capsys) -> None:
    code, out, err = predict(model, "--format", "hocr", str(images["page"]), str(images["line"]), capsys=capsys)
    assert code == 0, err
    root = ET.fromstring(out)
    pages = [e for e in root.iter(f"{XHTML}div") if e.get("class") == "ocr_page"]
    assert len(pages) == 2
    first = pages[0]
    assert 'image "' in first.get("title", "") and "bbox 0 0 420 240" in first.get("title", "")
    lines = [e for e in first.iter(f"{XHTML}span") if e.get("class") == "ocr_line"]
    assert len(lines) == len(TEXTS)
    for element in first.iter():
        title = element.get("title", "")
        if element.get("class") in ("ocr_carea", "ocr_line", "ocrx_word"):
            x0, y0, x1, y1 = (int(v) for v in title.removeprefix("bbox ").split(";")[0].split())
            assert 0 <= x0 < x1 <= 420 and 0 <= y0 < y1 <= 240, title


def test_onnxruntime_reads_the_page_like_torch(model, images, capsys) -> None:
    _, torch_out, _ = predict(model, "--page", str(images["page"]), capsys=capsys)
    code, onnx_out, err = predict(model, "--page", "--engine", "onnxruntime", str(images["page"]), capsys=capsys)
    assert code == 0, err
    assert onnx_out == torch_out


def test_page_options_are_refused_for_other_tasks(capsys) -> None:
    assert main(["predict", "kth", "--page", "--model", "missing.pt"]) == 1


def test_read_pages_writes_its_metrics(model, tmp_path, capsys) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    page, boxes = render([(30, 40, TEXTS)], (420, 240))
    Image.fromarray(page).save(samples / "page.png")
    (samples / "page.gt.txt").write_text("\n".join(TEXTS[:3]) + "\n\n" + "\n".join(TEXTS[3:]) + "\n")
    (samples / "page.boxes.tsv").write_text("".join(" ".join(map(str, b)) + "\n" for b in boxes))
    out = tmp_path / "out"
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["ocr"]["decode"]["method"] = "greedy"  # no language model here: the page mechanics are under test
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--params", str(tmp_path / "params.yaml"), "read-pages", "--model", str(model), "--samples", str(samples),
                 "--out", str(out)]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["lines_found"] == summary["lines_expected"] == len(TEXTS)
    assert "timing" not in summary  # eval.json: figures only, the same on every run
    details = json.loads((out / "pages.json").read_text())
    assert {k: details[k] for k in summary} == summary
    assert details["timing"]["lines"] >= 30
    assert "crops_cer" in details["per_page"]["page"]
    assert len((out / "lines.csv").read_text().splitlines()) == 1 + len(TEXTS)
    ET.fromstring((out / "hocr" / "page.hocr").read_text())


def test_answers_join_a_pages_lines(model, images) -> None:
    """The reader predict uses (registry reader: OcrPageReader) reads pages; the plain OcrTask that training,
    evaluation and export load reads every image as one line."""
    from seqlab.core.checkpoint import load_model
    from seqlab.core.registry import reader_class

    plain, net, ckpt = load_model(model, "ocr")
    (line,) = plain.answers(net, ckpt["config"]["meta"], [str(images["page"])])
    assert line.error is None and line.text is not None and "\n" not in line.text
    task = reader_class("ocr").from_checkpoint(ckpt["config"])
    (answer,) = task.answers(net, ckpt["config"]["meta"], [str(images["page"])])
    assert answer.error is None and answer.text is not None and answer.text.count("\n") == len(TEXTS) - 1
    out = io.StringIO()
    task.predict(net, ckpt["config"]["meta"], [str(images["page"])], out, io.StringIO(), page=False)
    assert len(out.getvalue().splitlines()) == 1  # page=False: read as one line image
