"""The one place that makes trdg 1.8.0 (2022, its last release) run on current Pillow and setuptools.

1. Pillow 10 removed `FreeTypeFont.getsize`, which trdg calls for every glyph
   (`trdg.utils.get_text_height`). We add it back, computed from `getbbox` the way Pillow 9.5
   did (width = right edge, height = bottom edge, both measured from the drawing origin); heights
   then match Pillow 9.5 in 898 of 900 font x word cases. Every other Pillow API on trdg's
   computer-text path still exists (it already uses `Image.Resampling` and `getlength`).
2. `trdg.generators` imports arabic-reshaper 2.1.3, which imports `pkg_resources` (gone from
   setuptools >= 82). We never import `trdg.generators`: rendering goes through
   `trdg.data_generator.FakeTextDataGenerator.generate`, which renders one image per call and
   does not touch arabic-reshaper, bidi or wikipedia. So no setuptools pin is needed.
3. trdg draws text one character at a time, so complex-script shaping buys nothing, yet Pillow
   builds with libraqm shape every single-character call through HarfBuzz, which dominates
   text rendering. trdg's text module gets `truetype` with Pillow's basic layout instead:
   ~1.6x more images/s, and the same pixels whether or not this Pillow has libraqm.
4. `trdg.data_generator` imports its handwriting module, which imports TensorFlow when installed
   (seconds per process) and prints "Missing modules for handwritten text generation" when not.
   We never render handwriting, so that import is blocked and the message swallowed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import ImageFont

_HANDWRITING = "trdg.handwritten_text_generator"


def _getsize(self: ImageFont.FreeTypeFont, text: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
    _, _, right, bottom = self.getbbox(text, *args, **kwargs)
    return int(right), int(bottom)


def patch_pillow() -> None:
    """Add `FreeTypeFont.getsize` when this Pillow lacks it (>= 10); a no-op otherwise."""
    if not hasattr(ImageFont.FreeTypeFont, "getsize"):
        ImageFont.FreeTypeFont.getsize = _getsize  # type: ignore[attr-defined]


def trdg_dir() -> Path:
    """trdg's package directory (fonts/, dicts/, images/), found without importing trdg."""
    spec = importlib.util.find_spec("trdg")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("trdg is not installed (pip install trdg==1.8.0)")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def import_trdg() -> Any:
    """Patch Pillow and trdg, import trdg quietly and return `FakeTextDataGenerator` (idempotent)."""
    patch_pillow()
    if _HANDWRITING not in sys.modules:
        sys.modules[_HANDWRITING] = None  # type: ignore[assignment]  # makes the import raise ImportError
    with contextlib.redirect_stdout(io.StringIO()):
        from trdg import computer_text_generator
        from trdg.data_generator import FakeTextDataGenerator
    # Only trdg's module sees this stand-in: it calls nothing of ImageFont but truetype.
    computer_text_generator.ImageFont = SimpleNamespace(
        truetype=partial(ImageFont.truetype, layout_engine=ImageFont.Layout.BASIC)
    )
    return FakeTextDataGenerator
