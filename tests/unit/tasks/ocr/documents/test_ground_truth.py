"""Ground truth read from each format the OCR tools write (line images + .gt.txt, TSV, PAGE XML in two schema
years, pages without coordinates), every kind of bad ground truth named on its own line, and gt_split's round
trip through the OCR data format. Lines are rendered here with Pillow's default font."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import load_split, save_split
from seqlab.tasks.ocr.documents.ground_truth import (
    GroundTruthError,
    cut_polygon,
    gt_split,
    read_ground_truth,
)
from seqlab.tasks.ocr.images import fit_split

ENGLISH = Charset.from_name("english")
NS_2013 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15"
NS_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def render(text: str, height: int = 40) -> np.ndarray:
    """A line of dark text on white, `height` rows."""
    font = ImageFont.load_default(size=height * 3 // 5)
    width = int(font.getlength(text)) + 16
    im = Image.new("L", (width, height), 255)
    ImageDraw.Draw(im).text((8, height // 6), text, fill=0, font=font)
    return np.asarray(im)


def write_pair(folder: Path, stem: str, text: str, suffix: str = ".png") -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    image = render(text)
    Image.fromarray(image).save(folder / f"{stem}{suffix}")
    (folder / f"{stem}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return image


def page_with_lines(texts: list[str], width: int = 420, pitch: int = 50) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A page with one text line every `pitch` rows, and each line's box (x0, y0, x1, y1)."""
    page = np.full((pitch * (len(texts) + 1), width), 255, dtype=np.uint8)
    boxes = []
    for i, text in enumerate(texts):
        line = render(text)[:, :width - 20]
        y = pitch // 2 + i * pitch
        page[y:y + line.shape[0], 10:10 + line.shape[1]] = line
        boxes.append((10, y, 10 + line.shape[1], y + line.shape[0]))
    return page, boxes


def page_xml(ns: str, image: str, lines: list[tuple[str, str, list[tuple[str | None, str]]]],
             point_children: bool = False) -> str:
    """PAGE XML with one TextRegion; `lines`: (id, "x,y x,y ..." points, [(index or None, text), ...])."""
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<PcGts xmlns="{ns}"><Page imageFilename="{image}" '
           'imageWidth="1" imageHeight="1"><TextRegion id="r1"><Coords points="0,0 1,0 1,1"/>']
    for line_id, points, equivs in lines:
        coords = ("<Coords>" + "".join(f'<Point x="{p.split(",")[0]}" y="{p.split(",")[1]}"/>' for p in points.split())
                  + "</Coords>") if point_children else f'<Coords points="{points}"/>'
        out.append(f'<TextLine id="{line_id}">{coords}')
        out.append('<Word id="w"><Coords points="0,0 1,0 1,1"/><TextEquiv><Unicode>not this</Unicode></TextEquiv></Word>')
        for index, text in equivs:
            attr = "" if index is None else f' index="{index}"'
            out.append(f"<TextEquiv{attr}><Unicode>{text}</Unicode></TextEquiv>")
        out.append("</TextLine>")
    out.append("</TextRegion></Page></PcGts>\n")
    return "".join(out)


# --- formats --------------------------------------------------------------------------------------------

def test_gt_txt_folder_recursive_in_path_order(tmp_path):
    a = write_pair(tmp_path, "b-line", "Second line, 2nd.")
    b = write_pair(tmp_path, "a-line", "First line")
    c = write_pair(tmp_path / "sub", "c-line", "in a subfolder", suffix=".tif")
    d = write_pair(tmp_path, "ocropy", "binarised only", suffix=".bin.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "a-line.nrm.png")  # the plain .png wins
    (tmp_path / "notes.txt").write_text("not ground truth")
    lines = read_ground_truth(tmp_path, ENGLISH)
    assert [line.name for line in lines] == ["a-line", "b-line", "ocropy", "sub/c-line"]
    assert [line.text for line in lines] == ["First line", "Second line, 2nd.", "binarised only", "in a subfolder"]
    for line, image in zip(lines, [b, a, d, c]):
        assert line.image.dtype == np.uint8 and np.array_equal(line.image, image)


def test_text_is_nfc_without_trailing_newline(tmp_path):
    write_pair(tmp_path, "x", "placeholder")
    (tmp_path / "x.gt.txt").write_bytes("\ufeffcafe\u0301  d\u00e9j\u00e0\r\n\n".encode())  # BOM, decomposed é, CRLF
    (line,) = read_ground_truth(tmp_path)
    assert line.text == "caf\u00e9  d\u00e9j\u00e0"  # composed; inner spaces kept as written


def test_tsv_rows_with_and_without_suffix(tmp_path):
    one = render("one")
    Image.fromarray(one).save(tmp_path / "one.png")
    Image.fromarray(render("two")).save(tmp_path / "two.jpg")
    (tmp_path / "lines.tsv").write_text("one.png\tone\n\ntwo\ttwo\twith a tab\n", encoding="utf-8")
    lines = read_ground_truth(tmp_path / "lines.tsv")
    assert [(line.name, line.text) for line in lines] == [("lines.tsv:1", "one"), ("lines.tsv:3", "two\twith a tab")]
    assert np.array_equal(lines[0].image, one)


@pytest.mark.parametrize("ns", [NS_2013, NS_2019])
def test_page_xml_polygon_cut_and_ground_truth_index(tmp_path, ns):
    page, boxes = page_with_lines(["Hello world", "Second"])
    Image.fromarray(page).save(tmp_path / "scan.png")
    (x0, y0, x1, y1), (u0, v0, u1, v1) = boxes
    # A rectangle for the first line, a triangle (upper-left half of the box) for the second.
    xml = page_xml(ns, "scan.png", [("l1", f"{x0},{y0} {x1 - 1},{y0} {x1 - 1},{y1 - 1} {x0},{y1 - 1}",
                                     [("1", "Hel1o wor1d"), ("0", "Hello world")]),
                                    ("l2", f"{u0},{v0} {u1 - 1},{v0} {u0},{v1 - 1}", [(None, "Second")])])
    (tmp_path / "scan.xml").write_text(xml, encoding="utf-8")
    lines = read_ground_truth(tmp_path / "scan.xml", ENGLISH)
    assert [(line.name, line.text) for line in lines] == [("scan.xml#l1", "Hello world"), ("scan.xml#l2", "Second")]
    assert np.array_equal(lines[0].image, page[y0:y1, x0:x1])
    tri = lines[1].image
    assert tri.shape == (v1 - v0, u1 - u0)
    box = page[v0:v1, u0:u1]
    assert tri[0, 0] == box[0, 0] and tri[-1, 0] == box[-1, 0]  # corners on the polygon
    inside = np.fromfunction(lambda r, c: c / (u1 - u0 - 1) + r / (v1 - v0 - 1) < 0.95, tri.shape)
    outside = np.fromfunction(lambda r, c: c / (u1 - u0 - 1) + r / (v1 - v0 - 1) > 1.05, tri.shape)
    assert np.array_equal(tri[inside], box[inside])  # kept as scanned
    assert (tri[outside] == 255).all() and (box[outside] < 128).any()  # text was there and is gone: white


def test_cut_polygon_clips_to_the_page():
    page = np.zeros((10, 10), np.uint8)
    assert cut_polygon(page, [(5, 5), (20, 5), (20, 20), (5, 20)]).shape == (5, 5)
    assert cut_polygon(page, [(20, 20), (30, 20), (30, 30)]) is None


def test_page_xml_2010_points_and_mixed_folder(tmp_path):
    """A folder with .gt.txt pairs and PAGE XML (2010 Point children): the page image is no line image."""
    write_pair(tmp_path, "a", "a line")
    page, ((x0, y0, x1, y1),) = page_with_lines(["On the page"])
    Image.fromarray(page).save(tmp_path / "page.png")
    ns_2010 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2010-03-19"
    (tmp_path / "page.xml").write_text(page_xml(ns_2010, "page.png", [
        ("t", f"{x0},{y0} {x1 - 1},{y0} {x1 - 1},{y1 - 1} {x0},{y1 - 1}", [(None, "On the page")])],
        point_children=True))
    (tmp_path / "mets.xml").write_text('<mets xmlns="http://www.loc.gov/METS/"/>')  # other XML: not ours
    lines = read_ground_truth(tmp_path, ENGLISH)
    assert [line.name for line in lines] == ["a", "page.xml#t"]
    assert np.array_equal(lines[1].image, page[y0:y1, x0:x1])


@dataclass
class FakePageLine:
    box: tuple[int, int, int, int]
    image: np.ndarray


def fake_line_finder(monkeypatch, boxes_of):
    """The line finder (documents.pages.find_lines), stood in for by one returning given boxes."""
    import seqlab.tasks.ocr.documents.ground_truth as ground_truth

    def find_lines(gray):
        return [FakePageLine(b, gray[b[1]:b[3], b[0]:b[2]]) for b in boxes_of(gray)]

    monkeypatch.setattr(ground_truth, "find_lines", find_lines)


def test_page_without_coordinates_is_cut_by_the_real_line_finder(tmp_path):
    texts = ["First of three", "second", "third."]
    page, _ = page_with_lines(texts)
    Image.fromarray(page).save(tmp_path / "page.png")
    (tmp_path / "page.gt.txt").write_text("\n".join(texts) + "\n")
    lines = read_ground_truth(tmp_path, ENGLISH)
    assert [line.text for line in lines] == texts
    assert all(line.image.ndim == 2 and line.image.shape[1] > line.image.shape[0] for line in lines)  # one line each


def test_page_without_coordinates_is_cut_by_the_line_finder(tmp_path, monkeypatch):
    texts = ["First of three", "second", "third."]
    page, boxes = page_with_lines(texts)
    Image.fromarray(page).save(tmp_path / "page.png")
    (tmp_path / "page.gt.txt").write_text(f"{texts[0]}\n\n{texts[1]}\n{texts[2]}\n")  # a blank line: a paragraph
    fake_line_finder(monkeypatch, lambda gray: boxes)
    lines = read_ground_truth(tmp_path, ENGLISH)
    assert [(line.name, line.text) for line in lines] == [("page:1", texts[0]), ("page:3", texts[1]), ("page:4", texts[2])]
    x0, y0, x1, y1 = boxes[1]
    assert np.array_equal(lines[1].image, page[y0:y1, x0:x1])

    fake_line_finder(monkeypatch, lambda gray: boxes[:2])
    with pytest.raises(GroundTruthError) as err:
        read_ground_truth(tmp_path, ENGLISH)
    assert err.value.problems == ["page.png: the line finder found 2 text lines on the page, page.gt.txt has 3"]


# --- bad ground truth -----------------------------------------------------------------------------------

BAD = {
    "no transcription": lambda d: Image.fromarray(render("alone")).save(d / "alone.png"),
    "no line image": lambda d: (d / "orphan.gt.txt").write_text("orphan\n"),
    "unreadable image": lambda d: ((d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage"),
                                   (d / "broken.gt.txt").write_text("broken\n")),
    "empty transcription": lambda d: (Image.fromarray(render("x")).save(d / "blank.png"),
                                      (d / "blank.gt.txt").write_text(" \n")),
    "outside the charset": lambda d: (write_pair(d, "euro", "5 \u20ac caf\u00e9"), write_pair(d, "cafe", "caf\u00e9")),
}
EXPECTED_PROBLEM = {
    "no transcription": "alone.png: no transcription (alone.gt.txt is missing)",
    "no line image": "orphan.gt.txt: no line image beside it",
    "unreadable image": "broken.png: unreadable image (cannot decode image",
    "empty transcription": "blank.gt.txt: empty transcription",
    "outside the charset": "characters outside the charset english: '\u00e9' x2, '\u20ac' x1 (in 2 lines: cafe, euro)",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_each_kind_of_bad_ground_truth_is_one_line(tmp_path, kind):
    write_pair(tmp_path, "good", "good line")
    BAD[kind](tmp_path)
    with pytest.raises(GroundTruthError) as err:
        read_ground_truth(tmp_path, ENGLISH)
    (problem,) = err.value.problems
    assert problem.startswith(EXPECTED_PROBLEM[kind]), problem
    assert str(err.value).splitlines()[1:] == [problem]

    echoed: list[str] = []
    lines = read_ground_truth(tmp_path, ENGLISH, drop_bad=True, echo=echoed.append)
    assert [line.name for line in lines] == ["good"]
    bad_lines = 2 if kind == "outside the charset" else 1
    (message,) = echoed
    assert message.startswith(f"{tmp_path}: dropped {bad_lines} of {bad_lines + 1} lines ("), message


def test_no_charset_skips_the_charset_check(tmp_path):
    write_pair(tmp_path, "cafe", "caf\u00e9 \u20ac")
    assert [line.text for line in read_ground_truth(tmp_path, None)] == ["caf\u00e9 \u20ac"]


def test_all_problems_together_and_page_xml_problems(tmp_path):
    for kind in BAD:
        BAD[kind](tmp_path)
    page, _ = page_with_lines(["x"])
    Image.fromarray(page).save(tmp_path / "p.png")
    (tmp_path / "p.xml").write_text(page_xml(NS_2019, "p.png", [
        ("no-text", "0,0 5,0 5,5", []), ("bad-coords", "0,0 5,0", [(None, "two points")]),
        ("off-page", "900,900 950,900 950,950", [(None, "off the page")])]))
    (tmp_path / "q.xml").write_text(page_xml(NS_2013, "missing.png", [("l", "0,0 5,0 5,5", [(None, "t")])]))
    with pytest.raises(GroundTruthError) as err:
        read_ground_truth(tmp_path, ENGLISH)
    problems = err.value.problems
    assert len(problems) == 9, problems
    assert str(err.value).startswith(f"9 problems in the ground truth {tmp_path} (10 lines; fix them, or drop")
    assert "p.xml#no-text: no transcription (no TextEquiv/Unicode)" in problems
    assert "p.xml#bad-coords: Coords with 2 points, not a polygon" in problems
    assert any(p.startswith("p.xml#off-page: the line's polygon lies outside the page image") for p in problems)
    assert "q.xml: page image missing.png: unreadable image (no such file)" in problems

    with pytest.raises(GroundTruthError, match="no ground-truth lines to read"):
        read_ground_truth(tmp_path, ENGLISH, drop_bad=True, echo=lambda _: None)


def test_missing_source_and_other_files(tmp_path):
    with pytest.raises(GroundTruthError, match="no such file or folder"):
        read_ground_truth(tmp_path / "nowhere")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(GroundTruthError, match="not a folder, a .tsv file or a PAGE XML file"):
        read_ground_truth(tmp_path / "x.csv")
    with pytest.raises(GroundTruthError, match="no ground-truth lines"):
        read_ground_truth(tmp_path)  # a folder without any


# --- the OCR data format --------------------------------------------------------------------------------

def test_gt_split_round_trips_through_the_data_format(tmp_path):
    texts = ["Two  spaces", "short", "A longer line, with punctuation!"]
    for i, text in enumerate(texts):
        write_pair(tmp_path / "gt", f"line{i}", text)
    lines = read_ground_truth(tmp_path / "gt", ENGLISH)
    split = gt_split(lines, ENGLISH)
    assert split.texts == ["Two spaces", "short", "A longer line, with punctuation!"]  # the charset's labels
    assert split.labels == [ENGLISH.encode(t) for t in split.texts] and split.kinds == ["gt"] * 3
    save_split(tmp_path / "gt.npz", split.images, split.texts, split.fonts, None, split.kinds)
    loaded = load_split(tmp_path / "gt.npz", ENGLISH)
    assert loaded.texts == split.texts and loaded.labels == split.labels and loaded.fonts == ["line0", "line1", "line2"]
    assert loaded.kinds == ["gt"] * 3 and list(loaded.widths) == [im.shape[1] for im in split.images]
    assert all(np.array_equal(a, line.image) for a, line in zip(loaded.images, lines))
    fitted = fit_split(loaded, 32)  # what evaluation and predict do with native heights
    assert all(im.shape[0] == 32 for im in fitted.images)

    raw = gt_split(lines)  # no charset: texts as given, labels left to load_split
    assert raw.texts == texts and raw.labels == [[], [], []]



def test_ocrd_workspace_page_image_relative_to_the_workspace(tmp_path):
    """OCR-D writes imageFilename relative to the workspace (where mets.xml is), not to the PAGE file."""
    page, ((x0, y0, x1, y1),) = page_with_lines(["In a workspace"])
    (tmp_path / "OCR-D-IMG").mkdir()
    (tmp_path / "OCR-D-GT").mkdir()
    Image.fromarray(page).save(tmp_path / "OCR-D-IMG" / "p1.png")
    (tmp_path / "OCR-D-GT" / "p1.xml").write_text(page_xml(NS_2019, "OCR-D-IMG/p1.png", [
        ("l", f"{x0},{y0} {x1 - 1},{y0} {x1 - 1},{y1 - 1} {x0},{y1 - 1}", [(None, "In a workspace")])]))
    for source in (tmp_path, tmp_path / "OCR-D-GT" / "p1.xml"):
        (line,) = read_ground_truth(source, ENGLISH)  # the page image is no line image without transcription
        assert line.text == "In a workspace" and np.array_equal(line.image, page[y0:y1, x0:x1])
