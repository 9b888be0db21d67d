"""The `ocr` section of params.yaml: rendering (`data`), one model/train pair per variant, Tesseract.

Model sections are named for the constructors they feed (seqlab.tasks.ocr.models): `ocr.bilstm.model`
holds ColumnBiLSTM's arguments, `ocr.crnn.model` CRNN's. Torch-free and trdg-free (fonts are listed
from trdg's package directory without importing it), so `seqlab validate` stays fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from seqlab.sections import (
    Names,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Ratio,
    Section,
    TrainConfig,
    fail,
    python_kind,
    rule,
)
from seqlab.tasks import VARIANTS
from seqlab.tasks.ocr.charset import Charset

FramesPerStep = Annotated[int, Field(ge=1, le=4)]
Dropout = Annotated[float, Field(ge=0, le=0.9)]
FontSelection = Annotated[
    Annotated[Literal["all"], Tag("str")] | Annotated[Names, Tag("list")],
    Discriminator(python_kind, custom_error_type="kind",
                  custom_error_message="must be 'all' or a list of font file names"),
]
HeldoutFonts = Annotated[
    Annotated[PositiveInt, Tag("int")] | Annotated[Names, Tag("list")],
    Discriminator(python_kind, custom_error_type="kind",
                  custom_error_message="must be a number of fonts or a list of font file names"),
]


def trdg_fonts() -> list[str]:
    """Latin font files trdg ships, found without importing trdg (which is slow and noisy)."""
    spec = importlib.util.find_spec("trdg")
    if spec is None or not spec.submodule_search_locations:
        return []
    font_dir = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "latin"
    return sorted(p.name for p in font_dir.glob("*.[ot]tf"))


class OcrCountsConfig(Section):
    train: PositiveInt
    val: PositiveInt
    test: PositiveInt
    test_heldout_fonts: PositiveInt


class OcrWordsConfig(Section):
    min_len: PositiveInt
    max_len: PositiveInt
    dictionary_ratio: Ratio
    number_ratio: Ratio  # the rest are random strings

    @model_validator(mode="after")
    def _mix(self) -> OcrWordsConfig:
        rule(self.min_len <= self.max_len, f"`min_len` must be <= `max_len` (got {self.min_len} > {self.max_len})")
        rule(self.dictionary_ratio + self.number_ratio <= 1,
             "`dictionary_ratio` + `number_ratio` must be <= 1 (the rest are random strings)")
        return self


class BackgroundWeightsConfig(Section):
    noise: NonNegativeFloat
    plain: NonNegativeFloat
    quasicrystal: NonNegativeFloat
    image: NonNegativeFloat  # photos, often illegible


class OcrDataConfig(Section):
    height: Annotated[int, Field(ge=16, le=128)]
    charset: NonEmptyStr  # a named charset or the characters themselves (seqlab.tasks.ocr.charset)
    counts: OcrCountsConfig
    fonts: FontSelection
    heldout_fonts: HeldoutFonts
    words: OcrWordsConfig
    skew_angle: Annotated[int, Field(ge=0, le=45)]  # trdg draws whole degrees
    blur: Annotated[float, Field(ge=0, le=5)]
    distortion_ratio: Ratio
    background_weights: BackgroundWeightsConfig
    text_colors: Names
    workers: PositiveInt

    @model_validator(mode="after")
    def _consistent(self) -> OcrDataConfig:
        rule(sum(self.background_weights.model_dump().values()) > 0,
             "`background_weights` must have at least one positive weight")
        try:
            chars = Charset.from_name(self.charset).chars
        except ValueError as exc:
            fail(f"`charset`: {exc}")
        number_ratio = self.words.number_ratio
        rule(number_ratio == 0 or any(c.isdigit() for c in chars),
             f"`charset` has no digit, but `words.number_ratio` is {number_ratio} "
             "(numbers need digits: add them or set number_ratio to 0)")
        available = trdg_fonts()
        fonts = available if self.fonts == "all" else self.fonts
        rule(bool(fonts), "`fonts` must not be empty")
        unknown = [f for f in fonts if f not in available]
        if unknown:
            fail(f"`fonts`: unknown font {unknown[0]!r} (trdg ships {len(available)} Latin fonts)")
        held = self.heldout_fonts
        missing = [f for f in held if f not in fonts] if isinstance(held, list) else []
        if missing:
            fail(f"`heldout_fonts`: {missing[0]!r} is not in `fonts`")
        n_held = held if isinstance(held, int) else len(held)
        rule(n_held < len(fonts), f"`heldout_fonts` must leave training fonts (holds out {n_held} of {len(fonts)})")
        for color in self.text_colors:
            rule(color.startswith("#") and len(color) == 7 and all(c in "0123456789abcdefABCDEF" for c in color[1:]),
                 f"`text_colors`: {color!r} is not a #rrggbb colour")
        return self


class ColumnBiLSTMConfig(Section):
    """seqlab.tasks.ocr.models.ColumnBiLSTM's arguments."""

    hidden_size: PositiveInt
    num_layers: PositiveInt
    projection: NonNegativeInt  # 0 feeds raw pixel columns to the LSTM
    stride: PositiveInt
    frames_per_step: FramesPerStep
    dropout: Dropout


class CRNNConfig(Section):
    """seqlab.tasks.ocr.models.CRNN's arguments."""

    channels: list[PositiveInt]
    hidden_size: PositiveInt
    num_layers: PositiveInt
    downsample: PositiveInt
    pool: Literal["stride", "max"]
    frames_per_step: FramesPerStep
    dropout: Dropout

    @model_validator(mode="after")
    def _shape(self) -> CRNNConfig:
        rule(bool(self.channels), "`channels` must not be empty")
        ds = self.downsample
        rule(not ds & (ds - 1) and ds <= 2 ** len(self.channels),
             f"`downsample` must be a power of 2 up to 2**len(channels) (got {ds})")
        return self


class BiLSTMVariantConfig(Section):
    model: ColumnBiLSTMConfig
    train: TrainConfig


class CRNNVariantConfig(Section):
    model: CRNNConfig
    train: TrainConfig


class TesseractConfig(Section):
    psm: Annotated[int, Field(ge=3, le=13)]  # page segmentation mode: 8 = single word, 7 = single line


class OcrConfig(Section):
    data: OcrDataConfig
    bilstm: BiLSTMVariantConfig
    crnn: CRNNVariantConfig
    tesseract: TesseractConfig

    def variant(self, name: str) -> BiLSTMVariantConfig | CRNNVariantConfig:
        """The model/train section of one OCR variant (VARIANTS)."""
        if name == "bilstm":
            return self.bilstm
        if name == "crnn":
            return self.crnn
        raise ValueError(f"unknown OCR variant {name!r} (choose from {', '.join(VARIANTS['ocr'])})")
