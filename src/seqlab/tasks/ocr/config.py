"""The `ocr` section of params.yaml: rendering (`data`), the reserved-family test splits (`reserved`),
training-time augmentation (`augment`), one model/train pair per variant, Tesseract, fine-tuning (`finetune`).

Model sections are what the models are built from (seqlab.tasks.ocr.recognizer.models): `ColumnBiLSTM(ocr.bilstm.model,
...)`, `CRNN(ocr.crnn.model, ...)`. Torch-free and trdg-free (fonts are listed
from trdg's package directory without importing it), so `seqlab validate` stays fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from seqlab.core.registry import entry
from seqlab.core.sections import (
    Names,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Ratio,
    Section,
    TaskSection,
    TrainConfig,
    fail,
    python_kind,
    rule,
)
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.reserved_families import reserved_family

if TYPE_CHECKING:
    from seqlab.core.config import Params

FramesPerStep = Annotated[int, Field(ge=1, le=4)]
FontSource = Literal["trdg", "debian"]  # trdg's Latin fonts; the Debian packages scripts/install_fonts.sh installs
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
    test_lines: PositiveInt  # line images of several words in the training fonts


class OcrLinesConfig(Section):
    """Line images: several words of `ocr.data.words` joined by single spaces (seqlab.tasks.ocr.synth.words), or
    windows of prose from the training corpus (seqlab.tasks.ocr.synth.prose)."""

    share: Ratio  # share of line images in train and val; 0 trains on single words only
    words: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]  # [fewest, most] words per line
    prose: Ratio  # share of line images (train, val, test_lines) that are prose windows; the rest join words
    chars: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]  # [shortest, longest] prose window

    @model_validator(mode="after")
    def _ordered(self) -> OcrLinesConfig:
        low, high = self.words
        rule(2 <= low <= high, f"`words` must be [low, high] with 2 <= low <= high (got {self.words})")
        rule(self.chars[0] <= self.chars[1], f"`chars` must be [low, high] with low <= high (got {self.chars})")
        return self


class CaseMixConfig(Section):
    """Shares of the letter case words are drawn in (seqlab.tasks.ocr.synth.words); they need not sum to 1."""

    as_spelled: NonNegativeFloat  # as the dictionary spells it (80% of trdg's English words are lower case)
    capitalized: NonNegativeFloat
    upper: NonNegativeFloat

    @model_validator(mode="after")
    def _some(self) -> CaseMixConfig:
        rule(self.as_spelled + self.capitalized + self.upper > 0, "needs at least one positive share")
        return self


class OcrWordsConfig(Section):
    min_len: PositiveInt
    max_len: PositiveInt
    dictionary_ratio: Ratio
    number_ratio: Ratio
    mixed_ratio: Ratio  # letters and digits mixed ("route66", "b0ok", "21st"): l/1/i and o/0 told apart by context
    case_mix: CaseMixConfig  # the rest are random strings

    @model_validator(mode="after")
    def _mix(self) -> OcrWordsConfig:
        rule(self.min_len <= self.max_len, f"`min_len` must be <= `max_len` (got {self.min_len} > {self.max_len})")
        rule(self.dictionary_ratio + self.number_ratio + self.mixed_ratio <= 1,
             "`dictionary_ratio` + `number_ratio` + `mixed_ratio` must be <= 1 (the rest are random strings)")
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
    font_sources: Annotated[list[FontSource], Field(min_length=1)]
    fonts: FontSelection
    heldout_fonts: HeldoutFonts
    words: OcrWordsConfig
    lines: OcrLinesConfig
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
        rule(" " in chars, f"`charset` has no space, which separates the words of line images "
             f"(add ' ' to {self.charset!r})")
        rule(len(set(self.font_sources)) == len(self.font_sources), "`font_sources` has duplicate entries")
        for key, names in (("fonts", self.fonts), ("heldout_fonts", self.heldout_fonts)):
            for name in names if isinstance(names, list) else ():
                if group := reserved_family(name):
                    fail(f"`{key}`: {name!r} is in the reserved evaluation family {group}; "
                         "reserved families are never used for training or validation")
        available = trdg_fonts()
        if self.fonts == "all":
            rule("trdg" in self.font_sources, "`font_sources` must include trdg: the held-out fonts come from it")
            fonts = available
        else:
            fonts = self.fonts
            rule(bool(fonts), "`fonts` must not be empty")
            # trdg fonts by file name, Debian ones as <package>/<file> (seqlab.tasks.ocr.synth.fonts.font_path)
            unknown = [f for f in fonts if f not in available and "/" not in f]
            if unknown:
                fail(f"`fonts`: unknown font {unknown[0]!r} (trdg ships {len(available)} Latin fonts; "
                     "Debian fonts are named <package>/<file>)")
        held = self.heldout_fonts
        missing = [f for f in held if f not in fonts] if isinstance(held, list) else []
        if missing:
            fail(f"`heldout_fonts`: {missing[0]!r} is not in `fonts`")
        n_held = held if isinstance(held, int) else len(held)
        n_trdg = len([f for f in fonts if f in available])
        rule(n_held < n_trdg, f"`heldout_fonts` must leave trdg training fonts (holds out {n_held} of {n_trdg})")
        for color in self.text_colors:
            rule(color.startswith("#") and len(color) == 7 and all(c in "0123456789abcdefABCDEF" for c in color[1:]),
                 f"`text_colors`: {color!r} is not a #rrggbb colour")
        return self


class OcrReservedConfig(Section):
    """The test splits rendered without trdg in the reserved families (seqlab.tasks.ocr.synth.reserved_render)."""

    count: PositiveInt  # words per split; test_reserved (clean) and test_reserved_degraded hold the same words
    lines: PositiveInt  # line images in test_reserved_lines and test_reserved_lines_degraded (the same lines)
    scans: PositiveInt  # scan-like line images in test_reserved_scans (those lines' texts, repeated if more)
    workers: PositiveInt


def _ordered(bounds: list[float]) -> list[float]:
    # Stays a list: the dump must validate again (a strict list field refuses a tuple) and log like YAML's.
    if bounds[0] > bounds[1]:
        fail(f"must be [low, high] with low <= high (got {bounds})")
    return bounds


Range = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(_ordered)]


class AugmentConfig(Section):
    """Training-time augmentation (seqlab.tasks.ocr.recognizer.augment), fresh for every sample in every epoch.

    Each effect is applied to a sample with its probability ``p_*``; its strength is uniform in its range.
    Lengths in "text heights" are relative to the height of the word's ink box after scaling. Scans
    (``p_scan``: binarised, optionally blurred first, with broken strokes), specks and baseline curl make
    a sample look like a line cut from a scanned page.
    """

    enabled: bool
    p_identity: Ratio  # samples left exactly as rendered (the clean distribution stays in view)
    # --- geometry ---
    p_zoom: Ratio
    zoom: Range  # scale of the word; >1 zooms in (clipped where the ink box fills the height)
    p_x_scale: Ratio
    x_scale: Range  # horizontal stretch: narrow and wide fonts; changes the width
    min_x_scale: Annotated[float, Field(gt=0)]  # floor on zoom * x_scale, so characters keep enough CTC steps
    # Cap on new width / source width: every padded column costs a training step as much as a real one.
    max_width_ratio: Annotated[float, Field(ge=1)]
    p_margins: Ratio
    margins: Range  # left/right margins in text heights: tight crop .. loose crop
    p_spacing: Ratio
    spacing: Range  # relative change of the ink-free columns: tighter .. looser letters
    p_shear: Ratio
    shear: Range  # slant, x shift per unit of height (0.35 ~ 19 degrees)
    p_rotate: Ratio
    rotate: Range  # degrees
    p_perspective: Ratio
    perspective: Annotated[float, Field(ge=0, le=0.3)]  # max shift of each corner of the ink box, in text heights
    # --- appearance ---
    p_stroke: Ratio
    stroke: Range  # < 0 thins (3x3 min-pool blend), > 0 thickens (3x3 max-pool blend)
    p_tone: Ratio
    contrast: Range  # grey-level gap between text and ground ("coloured text on coloured ground")
    p_invert: Ratio  # light text on dark ground
    p_texture: Ratio
    texture: Range  # std of a smooth random field on the ground (paper, stains), x contrast
    gradient: Range  # darkening across the word (uneven light), x contrast; with the texture
    p_blur: Ratio
    blur: Range  # Gaussian sigma in px (out of focus, low resolution)
    p_noise: Ratio
    noise: Range  # Gaussian pixel noise std (sensor noise), x contrast
    p_jpeg: Ratio
    jpeg_quality: Range  # libjpeg quality of a grayscale JPEG round trip
    # --- scans ---
    p_scan: Ratio  # binarised, black on white (tone, invert, texture, blur, noise and JPEG are then off)
    scan_threshold: Range  # threshold on the ink, 0 ground .. 1 darkest ink: low = bolder, high = thinner strokes
    p_scan_blur: Ratio  # of a scan: blurred before the threshold (a low-resolution scan)
    scan_blur: Range  # that blur's Gaussian sigma in px
    broken: Range  # of a scan: share of pixels dropped from the ink in 2x2 blobs (broken strokes)
    p_speckle: Ratio
    speckle: Range  # share of pixels made specks (1-2 px): ink on the ground, ground in the ink
    p_curl: Ratio
    curl: Range  # baseline curl: amplitude of a smooth vertical shift of the columns, in text heights
    curl_period: Range  # its wavelength, in text heights (low frequency: many letters per wave)

    @model_validator(mode="after")
    def _bounds(self) -> AugmentConfig:
        checks = {
            "zoom": self.zoom[0] > 0, "x_scale": self.x_scale[0] > 0, "margins": self.margins[0] >= 0,
            "spacing": self.spacing[0] > -0.9, "rotate": max(map(abs, self.rotate)) <= 30,
            "shear": max(map(abs, self.shear)) <= 1, "stroke": -1 <= self.stroke[0] and self.stroke[1] <= 1,
            "contrast": 0 < self.contrast[0] and self.contrast[1] <= 1, "texture": self.texture[0] >= 0,
            "gradient": 0 <= self.gradient[0] and self.gradient[1] <= 1, "blur": self.blur[0] >= 0,
            "noise": self.noise[0] >= 0, "jpeg_quality": 1 <= self.jpeg_quality[0] and self.jpeg_quality[1] <= 100,
            "scan_threshold": 0 < self.scan_threshold[0] and self.scan_threshold[1] < 1,
            "scan_blur": self.scan_blur[0] >= 0 and self.scan_blur[1] <= 3,
            "broken": 0 <= self.broken[0] and self.broken[1] <= 0.5,
            "speckle": 0 <= self.speckle[0] and self.speckle[1] <= 0.05,
            "curl": 0 <= self.curl[0] and self.curl[1] <= 1, "curl_period": self.curl_period[0] >= 2,
        }
        bad = next((name for name, ok in checks.items() if not ok), None)
        rule(bad is None, f"`{bad}` is out of its allowed range (got {getattr(self, str(bad), None)})")
        return self


class ColumnBiLSTMConfig(Section):
    """The keys seqlab.tasks.ocr.recognizer.models.ColumnBiLSTM is built from, each documented there."""

    hidden_size: PositiveInt
    num_layers: PositiveInt
    projection: NonNegativeInt
    stride: PositiveInt
    frames_per_step: FramesPerStep
    dropout: Dropout


class CRNNConfig(Section):
    """The keys seqlab.tasks.ocr.recognizer.models.CRNN is built from, each documented there."""

    channels: list[PositiveInt]
    hidden_size: PositiveInt
    num_layers: PositiveInt
    downsample: PositiveInt
    pool: Literal["stride", "max"]
    frames_per_step: FramesPerStep
    dropout: Dropout
    collapse: Literal["conv", "flatten"]
    input_height: Annotated[int, Field(ge=0, le=128)]

    @model_validator(mode="after")
    def _shape(self) -> CRNNConfig:
        rule(bool(self.channels), "`channels` must not be empty")
        ds = self.downsample
        rule(not ds & (ds - 1) and ds <= 2 ** len(self.channels),
             f"`downsample` must be a power of 2 up to 2**len(channels) (got {ds})")
        rule(self.input_height == 0 or self.input_height >= 8,
             f"`input_height` must be 0 (the data's height) or >= 8 (got {self.input_height})")
        return self


class BiLSTMVariantConfig(Section):
    model: ColumnBiLSTMConfig
    train: TrainConfig


class CRNNVariantConfig(Section):
    model: CRNNConfig
    train: TrainConfig


PageSegMode = Annotated[int, Field(ge=3, le=13)]


class TesseractConfig(Section):
    word_psm: PageSegMode  # page segmentation mode on word images: 8 = single word
    line_psm: PageSegMode  # on line images: 7 = single line


class DecodeConfig(Section):
    """How CTC outputs become text (recognizer.decoding): greedy, or a prefix beam search with the character
    language model the `ocr-lm` stage builds from the training text. docs/ocr.md "Decoding" has the sweep."""

    method: Literal["greedy", "beam"]
    beam_width: Annotated[int, Field(ge=1, le=64)]
    lm_weight: Annotated[float, Field(ge=0, le=5)]  # 0: a beam search without the language model
    length_bonus: Annotated[float, Field(ge=-5, le=5)]  # per character: offsets the language model's cost
    min_prob: Annotated[float, Field(gt=0, lt=1)]  # a frame's classes below this are not tried
    lm_order: Annotated[int, Field(ge=1, le=8)]  # characters per n-gram (the context is one fewer)
    # The language model's mean natural-log probability per character of the greedy reading below which that
    # reading is kept (random strings, codes); None: always the beam with the language model.
    lm_gate: Annotated[float, Field(lt=0)] | None


class OcrPagesConfig(Section):
    """The `ocr-pages` stage (documents.page_eval): the folder of transcribed sample pages it reads."""

    samples: str  # page images beside NAME.gt.txt (and optionally NAME.boxes.tsv), relative to the repository


class FinetuneConfig(Section):
    """`seqlab finetune ocr` and the ocr-finetune stage: a trained model adapted to ground-truth lines
    (seqlab.tasks.ocr.recognizer.finetune, docs/finetuning.md). Its command-line flags override these keys."""

    gt: NonEmptyStr  # the ground-truth folder trained on
    test_gt: NonEmptyStr | None  # scored on these lines; None: on the held-back validation lines of `gt`
    val_share: Annotated[float, Field(gt=0, lt=1)]  # of `gt`'s lines, held back (seeded, by line) for validation
    epochs: PositiveInt | None  # at most this many epochs; None: until the budget is spent
    minutes: Annotated[float, Field(gt=0)] | None  # CPU-minute budget (process CPU time); None: `epochs` only
    lr: Annotated[float, Field(gt=0)]  # constant learning rate of AdamW
    batch_size: PositiveInt
    augment: bool  # ocr.augment's training-time augmentation on every training batch
    synthetic_share: Annotated[float, Field(ge=0, lt=1)]  # of each epoch's samples, drawn from data/ocr/train.npz
    extend_charset: bool  # add the characters the ground truth needs (else lines with others are bad ground truth)
    drop_bad: bool  # leave bad ground-truth lines out (counted) instead of stopping on them
    seed: NonNegativeInt  # the validation hold-out, new output rows, batch order, synthetic draw and augmentation

    @model_validator(mode="after")
    def _bounded(self) -> FinetuneConfig:
        rule(self.epochs is not None or self.minutes is not None,
             "`epochs` and `minutes` are both null: set at least one (a number of epochs or a CPU-minute budget)")
        return self


class OcrRun(Section):
    """What one OCR training run reads (a RunSection): its variant's model and train sections and the
    shared augmentation, so all three are logged with the run and drive its resume fingerprint."""

    model: ColumnBiLSTMConfig | CRNNConfig
    train: TrainConfig
    augment: AugmentConfig


class OcrConfig(TaskSection):
    data: OcrDataConfig
    reserved: OcrReservedConfig
    augment: AugmentConfig
    bilstm: BiLSTMVariantConfig
    crnn: CRNNVariantConfig
    tesseract: TesseractConfig
    decode: DecodeConfig
    pages: OcrPagesConfig
    finetune: FinetuneConfig

    @classmethod
    def of(cls, params: Params) -> OcrConfig:
        """params.yaml's `ocr` section, typed (`OcrConfig.of(params).data.height` is checked by mypy)."""
        return params.section_of("ocr", cls)

    def run(self, variant: str | None = None) -> OcrRun:
        """The training run of one OCR variant: its model and train sections, and the shared augmentation."""
        section = self.variant(variant)
        return OcrRun(model=section.model, train=section.train, augment=self.augment)

    def variant(self, name: str | None) -> BiLSTMVariantConfig | CRNNVariantConfig:
        """The model/train section of one OCR variant (the registry's variants: one field each)."""
        sections: dict[str | None, BiLSTMVariantConfig | CRNNVariantConfig] = {"bilstm": self.bilstm, "crnn": self.crnn}
        if name not in sections:
            raise ValueError(f"unknown OCR variant {name!r} (choose from {', '.join(entry('ocr').variants)})")
        return sections[name]
