"""Word and line images for the OCR task, rendered with trdg.

Each image is described by an `ImageSpec` (text, font, seed, background, distortion) drawn from
the stage seed, and rendered by trdg's one-image generator after seeding Python's `random`,
numpy's global RNG and OpenCV's RNG (trdg draws from all three) with the spec's own seed. An
image therefore depends only on its spec, and the output is byte-identical whatever the number
of worker processes.

Rendering choices:
- Text is rendered as " word ": trdg sizes its canvas from glyph advances, which clips the ink
  of overhanging first/last glyphs (italics, Pacifico, Walkway Oblique: 72 of the 100 fonts
  clip some words). One space on each side leaves room for every overhang we measured.
- No `width` is passed to trdg (it would clip long words): height is exact, width follows the text.
- A line image is several words joined by single spaces (`ocr.data.lines`), or for a `lines.prose`
  share of the lines a window of `lines.chars` characters of prose from the training corpus
  (seqlab.tasks.ocr.synth.prose): trdg draws its spaces at the font's own advance, the label keeps one space
  per gap. `test_lines` holds only lines; train and val hold `lines.share` of them; the other test
  splits hold words only. Each image's kind (a word's, "words" or "prose") is saved with the split.
- Images whose text is nearly invisible (see `render_one`) are re-rendered, never kept or dropped.
- Fonts are ids of the font inventory (seqlab.tasks.ocr.synth.fonts), which decides which files may
  train: fonts drawing lowercase as capitals only with caseless charsets, fonts lacking a
  visible glyph never, reserved evaluation families never.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from seqlab.core import paths
from seqlab.core.errors import DataError
from seqlab.core.storage import atomic_write
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import DATA_DIR, save_split, write_meta
from seqlab.tasks.ocr.synth.fonts import choose_heldout_fonts, font_dir, font_path, usable_fonts
from seqlab.tasks.ocr.synth.prose import PROSE_KIND, ProseSource
from seqlab.tasks.ocr.synth.trdg_compat import import_trdg, trdg_dir
from seqlab.tasks.ocr.synth.words import LINE_KIND, WordSource
from seqlab.tasks.ocr.synth.workers import map_in_order

if TYPE_CHECKING:
    from seqlab.tasks.ocr.config import OcrDataConfig, OcrWordsConfig

SPLITS = ("train", "val", "test", "test_heldout_fonts", "test_lines")
BACKGROUNDS = {"noise": 0, "plain": 1, "quasicrystal": 2, "image": 3}  # name -> trdg background_type
MARGINS = (2, 0, 2, 0)  # top, left, bottom, right; the padding spaces already give horizontal room
MAX_ATTEMPTS = 4  # the last attempt uses a plain background, which trdg never rejects
# Below this text/background grey-level gap most words on photo backgrounds are unreadable; ~25%
# of photo crops fall below it. A floor against invisible text, not a legibility guarantee; only
# photos are checked, since on the other backgrounds a low gap means a thin font, still legible.
MIN_CONTRAST = 32
CONTACT_SHEET_SIZE = (6, 8)  # columns, rows
_LABEL_FONT = "Roboto-Regular.ttf"


class RenderError(RuntimeError):
    """trdg failed on one image every time it was retried."""


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides one image; its label is `charset.normalize(text)`."""

    text: str
    font: str  # font id (seqlab.tasks.ocr.synth.fonts): a trdg file name or "<package>/<file name>"
    seed: int
    background: int  # trdg background_type, see BACKGROUNDS
    distortion: int = 0  # 0 none, 1 sine, 2 cosine
    distortion_orientation: int = 0  # 0 vertical, 1 horizontal, 2 both
    kind: str = ""  # what the text is (saved with the split, not rendered): see seqlab.tasks.ocr.data


@dataclass(frozen=True)
class RenderConfig:
    height: int
    skew_angle: int = 0  # trdg draws a whole number of degrees in [-skew_angle, skew_angle]
    blur: float = 0.0  # Gaussian blur radius drawn in [0, blur]
    text_colors: tuple[str, ...] = ("#000000",)  # trdg draws each RGB channel between first and last

    @classmethod
    def of(cls, data: OcrDataConfig) -> RenderConfig:
        return cls(data.height, data.skew_angle, float(data.blur), tuple(data.text_colors))


@dataclass
class RenderResult:
    images: list[np.ndarray]  # uint8, (height, width) each
    retries: int  # failed trdg attempts that were retried


def build_specs(
    rng: np.random.Generator, count: int, fonts: Sequence[str], words: WordSource, data: OcrDataConfig,
    line_share: float = 0.0, prose: ProseSource | None = None,
) -> list[ImageSpec]:
    """`count` image specs drawn from `rng`: texts, fonts, backgrounds, distortions and seeds.

    A `line_share` of the images show a line of `data.lines.words` words instead of one word, and
    a `data.lines.prose` share of those lines a window of `prose` instead. The lines are drawn
    after everything else and the windows after the lines, so the other draws depend on neither share.
    """
    weights = np.array([float(weight) for weight in _background_weights(data).values()])
    texts, kinds = words.sample_with_kinds(rng, count)
    font_ids = rng.integers(len(fonts), size=count)
    backgrounds = rng.choice(list(BACKGROUNDS.values()), size=count, p=weights / weights.sum())
    distorted = rng.random(count) < float(data.distortion_ratio)
    distortions = np.where(distorted, rng.integers(1, 3, size=count), 0)
    orientations = rng.integers(0, 3, size=count)
    seeds = rng.integers(2**31, size=count)
    if line_share > 0:
        is_line = np.flatnonzero(rng.random(count) < line_share)
        lines = words.sample_lines(rng, len(is_line), *data.lines.words)
        for i, line in zip(is_line.tolist(), lines, strict=True):
            texts[i], kinds[i] = line, LINE_KIND
        prose_share = float(data.lines.prose)
        if prose_share > 0:
            if prose is None:
                raise ValueError("lines.prose > 0 needs a ProseSource to draw windows from")
            # Windows replace word lines already drawn, so the word lines left are those of prose share 0.
            is_prose = is_line[rng.random(len(is_line)) < prose_share]
            for i, window in zip(is_prose.tolist(), prose.sample(rng, len(is_prose)), strict=True):
                texts[i], kinds[i] = window, PROSE_KIND
    return [
        ImageSpec(text, fonts[f], s, b, d, o, kind)
        for text, f, s, b, d, o, kind in zip(
            texts, font_ids.tolist(), seeds.tolist(), backgrounds.tolist(), distortions.tolist(),
            orientations.tolist(), kinds, strict=True,
        )
    ]


def _background_weights(data: OcrDataConfig) -> dict[str, float]:
    """`data.background_weights` in BACKGROUNDS order (the order of the draws)."""
    weights = data.background_weights
    return {"noise": weights.noise, "plain": weights.plain, "quasicrystal": weights.quasicrystal, "image": weights.image}


def word_source(charset: Charset, words: OcrWordsConfig) -> WordSource:
    """The training words of `ocr.data.words`."""
    return WordSource(charset, words.min_len, words.max_len, words.dictionary_ratio, words.number_ratio,
                      case_mix=words.case_mix.model_dump(), mixed_ratio=words.mixed_ratio)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    cv2.setRNGSeed(seed)  # trdg's noise background uses cv2.randn


def _attempt_seed(seed: int, attempt: int) -> int:
    return seed if attempt == 0 else int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0] >> 1)


def contrast(gray: np.ndarray, text: np.ndarray) -> float:
    """Grey-level gap between the median text pixel and the median background pixel."""
    if text.all() or not text.any():
        return 0.0
    return abs(float(np.median(gray[text])) - float(np.median(gray[~text])))


def render_one(spec: ImageSpec, cfg: RenderConfig) -> tuple[np.ndarray, int]:
    """The grayscale image of `spec` and the number of retries it took.

    An attempt fails when trdg raises, returns None (its own text/background check, which
    compares whole-image means) or, on a photo background, gives text whose median grey is
    within MIN_CONTRAST of the background's (dark words on dark photo crops are invisible, so
    their labels would be noise). Each retry reseeds deterministically, the last one on a plain
    background; when every attempt fails, RenderError is raised: no image is dropped silently.
    """
    generator = import_trdg()
    error: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        background = spec.background if attempt < MAX_ATTEMPTS - 1 else BACKGROUNDS["plain"]
        _seed_all(_attempt_seed(spec.seed, attempt))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # trdg prints why it rejects an image
                result = generator.generate(
                    index=0, text=f" {spec.text} ", font=str(font_path(spec.font)), out_dir=None,
                    size=cfg.height, extension="png", skewing_angle=cfg.skew_angle, random_skew=True,
                    blur=cfg.blur, random_blur=True, background_type=background,
                    distorsion_type=spec.distortion, distorsion_orientation=spec.distortion_orientation,
                    is_handwritten=False, name_format=0, width=-1, alignment=0,
                    text_color=",".join(cfg.text_colors), orientation=0, space_width=1.0,
                    character_spacing=0, margins=MARGINS, fit=False, output_mask=1, word_split=False,
                    image_dir=str(trdg_dir() / "images"), image_mode="RGB",
                )
        except Exception as exc:  # any trdg failure is retried; the last one is chained below
            error = exc
            continue
        if result is not None:
            image, mask = result
            # RGB, not "L": trdg's mask encodes character numbers in the blue channel, which
            # an "L" conversion rounds to zero for the first characters.
            gray = np.array(image.convert("L"), dtype=np.uint8)
            if background != BACKGROUNDS["image"] or contrast(gray, np.asarray(np.asarray(mask).any(axis=2))) >= MIN_CONTRAST:
                return gray, attempt
    raise RenderError(f"trdg failed {MAX_ATTEMPTS} times to render {spec} (last error: {error})") from error


def _render_chunk(specs: Sequence[ImageSpec], cfg: RenderConfig) -> tuple[list[np.ndarray], int]:
    images, retries = [], 0
    for spec in specs:
        image, tries = render_one(spec, cfg)
        images.append(image)
        retries += tries
    return images, retries


def render_images(
    specs: Sequence[ImageSpec], cfg: RenderConfig, workers: int = 1, progress: bool = True
) -> RenderResult:
    """Render `specs` in order over `workers` processes (this one and `workers - 1` spawned ones); the
    result does not depend on `workers`."""
    # Many small chunks balance slow (quasicrystal) chunks and let the processes finish together.
    size = max(1, min(64, math.ceil(len(specs) / (max(workers, 1) * 64))))
    chunks = [specs[i : i + size] for i in range(0, len(specs), size)]
    result = RenderResult([], 0)
    render = partial(_render_chunk, cfg=cfg)
    with tqdm(total=len(specs), unit="img", desc="render", disable=not progress) as bar:
        _collect(map_in_order(render, chunks, workers), result, bar)
    return result


def _collect(parts: Iterable[tuple[list[np.ndarray], int]], result: RenderResult, bar: tqdm) -> None:
    for images, retries in parts:
        result.images.extend(images)
        result.retries += retries
        bar.update(len(images))


def contact_sheet(path: Path, images: Sequence[np.ndarray], labels: Sequence[str], fonts: Sequence[str]) -> None:
    """A PNG grid of samples with each label (black) and font (grey) under its image."""
    cols, rows = CONTACT_SHEET_SIZE
    n = min(len(images), cols * rows)
    height = images[0].shape[0]
    cell_w = min(256, max(im.shape[1] for im in images[:n])) + 12
    cell_h = height + 40
    sheet = Image.new("L", (cols * cell_w, math.ceil(n / cols) * cell_h), 255)
    draw = ImageDraw.Draw(sheet)
    label_font = ImageFont.truetype(str(font_dir() / _LABEL_FONT), 15)
    name_font = ImageFont.truetype(str(font_dir() / _LABEL_FONT), 10)
    for i in range(n):
        x, y = (i % cols) * cell_w + 6, (i // cols) * cell_h + 4
        img = Image.fromarray(images[i])
        if img.width > cell_w - 12:  # shrink, never stretch, the few very long words
            img = img.resize((cell_w - 12, max(1, round(img.height * (cell_w - 12) / img.width))), Image.Resampling.LANCZOS)
        sheet.paste(img, (x, y))
        draw.text((x, y + height + 2), labels[i], font=label_font, fill=0)
        draw.text((x, y + height + 21), fonts[i], font=name_font, fill=110)
    atomic_write(path, lambda fh: sheet.save(fh, format="PNG"))


def training_fonts_from_manifest(data: OcrDataConfig, charset: Charset) -> tuple[list[str], dict[str, str]]:
    """Font ids to render train/val/test with: the manifest's (fonts: all) or the explicit list, checked."""
    if data.fonts != "all":
        return usable_fonts(data.fonts, charset, data.font_sources)
    path = paths.fonts_manifest()
    if not path.is_file():
        raise DataError(f"{path} is missing (run the fonts stage first: dvc repro ocr-fonts)")
    manifest = json.loads(path.read_text())
    if manifest["charset"] != charset.name or manifest["sources"] != sorted(data.font_sources):
        raise DataError(f"{path} was written for charset {manifest['charset']!r} and sources {manifest['sources']}, "
                        "not these params (run dvc repro ocr-fonts)")
    return [f["id"] for f in manifest["fonts"]], {f["id"]: f["reason"] for f in manifest["excluded"]}


def generate_data(data: OcrDataConfig, seed: int) -> dict[str, Any]:
    """The `seqlab generate ocr` stage (the task registry names it): every split under data/ocr and its
    meta.json; returns JSON-ready stats."""
    out_dir = paths.data_dir(DATA_DIR)
    stats = generate(data, seed, out_dir, data.workers)
    write_meta(out_dir, Charset.from_name(data.charset), data.height)
    return stats


def generate(
    data: OcrDataConfig, seed: int, out_dir: Path, workers: int = 1, progress: bool = True,
    corpus_dir: Path | None = None,
) -> dict[str, Any]:
    """The OCR generate stage: render every split to `out_dir/<split>.npz` plus a contact sheet.

    `test` uses the training fonts; `test_heldout_fonts` uses only the held-out fonts, which never
    appear in train or val. Prose lines come from the training corpus (data/ocr-corpus/train.txt, or
    `corpus_dir`'s), read only when `lines.prose` > 0. Returns JSON-ready stats.
    """
    from seqlab.core.seeding import derive_seed  # here, not at module level: spawned workers skip torch

    start = time.perf_counter()
    out_dir = Path(out_dir)
    charset = Charset.from_name(data.charset)
    fonts, excluded = training_fonts_from_manifest(data, charset)
    heldout = choose_heldout_fonts(data.heldout_fonts, fonts, seed)
    train_fonts = [f for f in fonts if f not in heldout]
    words = word_source(charset, data.words)
    cfg = RenderConfig.of(data)
    shortest, longest = data.lines.chars
    prose = ProseSource.from_corpus("train", charset, shortest, longest, corpus_dir) if data.lines.prose > 0 else None

    line_share = {"train": data.lines.share, "val": data.lines.share, "test_lines": 1.0}
    c = data.counts
    counts = {"train": c.train, "val": c.val, "test": c.test, "test_heldout_fonts": c.test_heldout_fonts,
              "test_lines": c.test_lines}
    specs = {
        split: build_specs(
            np.random.default_rng(derive_seed(seed, "ocr", split)),
            counts[split],
            heldout if split == "test_heldout_fonts" else train_fonts,
            words,
            data,
            line_share.get(split, 0.0),
            prose,
        )
        for split in SPLITS
    }
    all_specs = [s for split in SPLITS for s in specs[split]]
    render_start = time.perf_counter()
    rendered = render_images(all_specs, cfg, workers, progress)
    render_seconds = time.perf_counter() - render_start

    stats: dict[str, Any] = {**_save_splits(out_dir, specs, rendered.images, charset, cfg.height),
                             "retries": rendered.retries}
    stats.update(
        charset=charset.name,
        chars=charset.chars,
        num_classes=charset.num_classes,
        dictionary_words=len(words.words),
        prose_words=len(prose.words) if prose else 0,  # words in windows the charset accepts
        train_fonts=len(train_fonts),
        heldout_fonts=heldout,
        excluded_fonts=len(excluded),  # the reasons are in data/ocr-fonts.json
        render_seconds=round(render_seconds, 2),
        seconds=round(time.perf_counter() - start, 2),
        images_per_s=round(len(all_specs) / max(render_seconds, 1e-9), 1),
    )
    return stats


def _save_splits(out_dir: Path, specs: dict[str, list[ImageSpec]], images: list[np.ndarray], charset: Charset,
                 height: int) -> dict[str, Any]:
    """Write each split's share of `images` (rendered in SPLITS order) and the train contact sheet; their
    counts and mean widths."""
    stats: dict[str, Any] = {"counts": {}, "mean_width": {}}
    offset = 0
    for split in SPLITS:
        split_specs = specs[split]
        split_images = images[offset : offset + len(split_specs)]
        offset += len(split_specs)
        labels = [charset.normalize(s.text) for s in split_specs]
        split_fonts = [s.font for s in split_specs]
        save_split(out_dir / f"{split}.npz", split_images, labels, split_fonts, height, [s.kind for s in split_specs])
        if split == "train":
            contact_sheet(out_dir / "contact_sheet.png", split_images, labels, split_fonts)
        stats["counts"][split] = len(split_images)
        stats["mean_width"][split] = round(float(np.mean([im.shape[1] for im in split_images])), 2)
    return stats
