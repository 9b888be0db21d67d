"""The OCR Task as `seqlab predict ocr` reads with it: page images as well as word and line images.

OcrPageReader adds page reading (documents.reading: the line finder, one recognizer batch, reading order)
and hOCR output to the OcrTask. It is the registry's `reader` for ocr, which only predict loads: the
training, evaluation and export stages import the plain OcrTask, so editing the page code (documents/)
reruns none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from torch import nn

from seqlab.core.task import Answer
from seqlab.tasks.ocr.documents.hocr import to_hocr
from seqlab.tasks.ocr.documents.reading import Reading, read_images
from seqlab.tasks.ocr.recognizer.task import OcrTask


class OcrPageReader(OcrTask):
    predict_options = frozenset({"page", "output_format"})  # predict --page, --format

    def answers(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str]) -> Iterator[Answer]:
        """As OcrTask's, and an image detected as a page answers its lines' texts joined by newlines."""
        for reading in self.read(model, inputs):
            yield Answer(reading.path, None, reading.error) if reading.error else Answer(reading.path, reading.text, None)

    def read(self, model: nn.Module, inputs: Iterable[str], page: bool | None = None) -> list[Reading]:
        """Every input read with one recognizer call: line images as lines, pages (``page=True``, or detected
        when None) line by line in reading order."""
        return read_images(self.recognizer(model), inputs, self.height, page)

    def predict(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str], out: TextIO,
                err: TextIO, *, page: bool | None = None, output_format: str = "text") -> int:
        """``text``: ``PATH<TAB>TEXT`` per line image, and per text line of a page in reading order (a page
        without text: one ``PATH<TAB>`` line); ``hocr``: one hOCR document (documents.hocr). Unreadable
        inputs: one line each on `err`."""
        readings = self.read(model, inputs, page)
        for reading in readings:
            if reading.error is not None:
                print(f"{reading.path}: {reading.error}", file=err)
            elif output_format == "text":
                for line in reading.lines or [None]:
                    print(f"{reading.path}\t{line.text if line else ''}", file=out)
        if output_format == "hocr":
            out.write(to_hocr(readings))
        return sum(r.error is not None for r in readings)
