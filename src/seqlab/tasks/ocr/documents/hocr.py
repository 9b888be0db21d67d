"""Readings as hOCR 1.2: an XHTML document with one ``ocr_page`` per input, the format Tesseract writes
and OCRmyPDF, hocr-tools and hOCR viewers read.

    <div class="ocr_page" id="page_1" title='image "scan.png"; bbox 0 0 640 480; ppageno 0'>
      <span class="ocr_line" id="line_1_1" title="bbox 36 92 580 122">
        <span class="ocrx_word" id="word_1_1_1" title="bbox 36 92 83 115">This</span> ...

Boxes are ``x0 y0 x1 y1`` in the input image's pixels, x1 and y1 exclusive (Tesseract's convention). A
line image is one page holding one line whose box is the whole image. Word boxes: when a line's ink splits
into as many clusters (pages.PageLine.words) as the text has words, each word gets its cluster; otherwise
the line's box is shared out along x in proportion to the words' lengths (an estimate). Errors (unreadable
inputs) are not in the document: predict reports them on stderr. The lines of a page sit in one
``ocr_carea`` per column (its box: the union of its lines').
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from seqlab.tasks.ocr.documents.pages import Box
from seqlab.tasks.ocr.documents.reading import Reading, ReadLine

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title></title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="seqlab"/>
  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_line ocrx_word"/>
 </head>
 <body>
"""
TAIL = """ </body>
</html>
"""


def to_hocr(readings: Sequence[Reading]) -> str:
    """One hOCR document for the readings that succeeded, pages numbered from 1 in input order."""
    parts = [HEAD]
    for p, reading in enumerate((r for r in readings if r.error is None), 1):
        w, h = reading.size
        image = reading.path.replace("\\", "\\\\").replace('"', '\\"')
        title = f'image "{image}"; bbox 0 0 {w} {h}; ppageno {p - 1}'
        parts.append(f'  <div class="ocr_page" id="page_{p}" title={quoteattr(title)}>\n')
        columns = sorted({line.column for line in reading.lines})
        n = 0
        for c, column in enumerate(columns, 1):
            lines = [line for line in reading.lines if line.column == column]
            area = (min(b.box[0] for b in lines), min(b.box[1] for b in lines),
                    max(b.box[2] for b in lines), max(b.box[3] for b in lines))
            parts.append(f'   <div class="ocr_carea" id="block_{p}_{c}" title="{_bbox(area)}">\n')
            for line in lines:
                n += 1
                parts.append(_line(line, p, n))
            parts.append("   </div>\n")
        parts.append("  </div>\n")
    parts.append(TAIL)
    return "".join(parts)


def _line(line: ReadLine, p: int, n: int) -> str:
    words = line.text.split()
    spans = [f'<span class="ocrx_word" id="word_{p}_{n}_{k}" title="{_bbox(box)}">{escape(word)}</span>'
             for k, (word, box) in enumerate(zip(words, word_boxes(line), strict=True), 1)]
    return f'    <span class="ocr_line" id="line_{p}_{n}" title="{_bbox(line.box)}">' + " ".join(spans) + "</span>\n"



def word_boxes(line: ReadLine) -> list[Box]:
    """A box per word of the line's text: its ink clusters when they match the words in number, else the
    line's box cut along x in proportion to the words' lengths (counting one space between words)."""
    words = line.text.split()
    if len(line.words) == len(words):
        return list(line.words)
    x0, y0, x1, y1 = line.box
    total = sum(len(w) for w in words) + max(0, len(words) - 1)
    boxes, pos = [], 0
    for word in words:
        left = x0 + round((x1 - x0) * pos / total)
        pos += len(word)
        boxes.append((left, y0, max(left + 1, x0 + round((x1 - x0) * pos / total)), y1))
        pos += 1
    return boxes


def _bbox(box: Box) -> str:
    return "bbox {} {} {} {}".format(*box)
