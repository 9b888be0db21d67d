"""The `ocr` section of params.yaml: rendering (data), one model/train subsection per variant, Tesseract.

Registered with seqlab.params on import, so the whole file is still validated in one pass.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from seqlab.errors import ParamsError
from seqlab.params import TRAIN, Choice, Field, Float, Int, Positive, register_section

VARIANTS = ("rnn", "crnn")


def trdg_fonts() -> list[str]:
    """Latin font files trdg ships, found without importing trdg (which is slow and noisy)."""
    spec = importlib.util.find_spec("trdg")
    if spec is None or not spec.submodule_search_locations:
        return []
    font_dir = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "latin"
    return sorted(p.name for p in font_dir.glob("*.[ot]tf"))


DATA = {
    "height": Int(min=16, max=128),
    "charset": Field("str"),
    "counts": {"train": Positive(), "val": Positive(), "test": Positive(), "test_heldout_fonts": Positive()},
    "fonts": Field("str|list[str]"),
    "heldout_fonts": Field("int|list[str]"),
    "words": {"min_len": Positive(), "max_len": Positive(), "dictionary_ratio": Float(min=0, max=1),
              "number_ratio": Float(min=0, max=1)},
    "skew_angle": Int(min=0, max=45),  # trdg draws whole degrees
    "blur": Float(min=0, max=5),
    "distortion_ratio": Float(min=0, max=1),
    "background_weights": {"noise": Float(min=0), "plain": Float(min=0), "quasicrystal": Float(min=0),
                           "image": Float(min=0)},
    "text_colors": Field("list[str]"),
    "workers": Positive(),
}

MODELS = {
    "rnn": {"hidden_size": Positive(), "num_layers": Positive(), "projection": Int(min=0), "stride": Positive(),
            "frames_per_step": Int(min=1, max=4), "dropout": Float(min=0, max=0.9)},
    "crnn": {"channels": Field("list[int]"), "hidden_size": Positive(), "num_layers": Positive(),
             "downsample": Positive(), "pool": Choice("stride", "max"),
             "frames_per_step": Int(min=1, max=4), "dropout": Float(min=0, max=0.9)},
}

SCHEMA = {
    "data": DATA,
    **{v: {"model": MODELS[v], "train": TRAIN} for v in VARIANTS},
    "tesseract": {"psm": Int(min=3, max=13)},  # page segmentation mode: 8 = single word
}


def _rules(p: dict[str, Any]) -> None:
    d = p["ocr"]["data"]
    w = d["words"]
    if w["min_len"] > w["max_len"]:
        raise ParamsError(f"ocr.data.words.min_len must be <= ocr.data.words.max_len (got {w['min_len']} > {w['max_len']})")
    if w["dictionary_ratio"] + w["number_ratio"] > 1:
        raise ParamsError("ocr.data.words.dictionary_ratio + number_ratio must be <= 1 (the rest are random strings)")
    if sum(d["background_weights"].values()) <= 0:
        raise ParamsError("ocr.data.background_weights must have at least one positive weight")
    try:
        from seqlab.tasks.ocr.charset import Charset

        chars = Charset.from_name(d["charset"]).chars
    except ValueError as exc:
        raise ParamsError(f"ocr.data.charset: {exc}") from None
    if w["number_ratio"] > 0 and not any(c.isdigit() for c in chars):
        raise ParamsError(f"ocr.data.charset has no digit, but ocr.data.words.number_ratio is {w['number_ratio']} "
                          "(numbers need digits: add them or set number_ratio to 0)")
    available = trdg_fonts()
    fonts = available if d["fonts"] == "all" else d["fonts"]
    if isinstance(d["fonts"], str) and d["fonts"] != "all":
        raise ParamsError(f"ocr.data.fonts must be 'all' or a list of font file names (got {d['fonts']!r})")
    if not fonts:
        raise ParamsError("ocr.data.fonts must not be empty")
    unknown = [f for f in fonts if f not in available]
    if unknown:
        raise ParamsError(f"ocr.data.fonts: unknown font {unknown[0]!r} (trdg ships {len(available)} Latin fonts)")
    held = d["heldout_fonts"]
    n_held = held if isinstance(held, int) else len(held)
    if isinstance(held, int) and held < 1:
        raise ParamsError(f"ocr.data.heldout_fonts must be >= 1 (got {held})")
    if isinstance(held, list):
        missing = [f for f in held if f not in fonts]
        if missing:
            raise ParamsError(f"ocr.data.heldout_fonts: {missing[0]!r} is not in ocr.data.fonts")
    if n_held >= len(fonts):
        raise ParamsError(f"ocr.data.heldout_fonts must leave training fonts (holds out {n_held} of {len(fonts)})")
    for color in d["text_colors"]:
        if not (color.startswith("#") and len(color) == 7 and all(c in "0123456789abcdefABCDEF" for c in color[1:])):
            raise ParamsError(f"ocr.data.text_colors: {color!r} is not a #rrggbb colour")
    crnn = p["ocr"]["crnn"]["model"]
    if not crnn["channels"]:
        raise ParamsError("ocr.crnn.model.channels must not be empty")
    ds = crnn["downsample"]
    if ds & (ds - 1) or ds > 2 ** len(crnn["channels"]):
        raise ParamsError(f"ocr.crnn.model.downsample must be a power of 2 up to 2**len(channels) (got {ds})")


register_section("ocr", SCHEMA, [_rules])
