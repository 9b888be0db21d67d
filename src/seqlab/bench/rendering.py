"""trdg rendering: `render_images` with 2 worker processes vs 1, and vs trdg's own command-line tool.

Specs are drawn as the OCR generate stage draws them (params.yaml's word mix, background mix,
skew, blur, distortion, colours), in trdg's Latin .ttf fonts usable with the charset (the font
inventory's Debian fonts need `make fonts`; trdg's ship with it). Times are wall-clock, pool
start-up included; the 1-worker run renders in this process after a warm-up render, so it pays no
import. With 2 workers, a spawned process starts (~0.5 s of imports) while this one renders: the
speed-up is 2T / (T + 0.5 s) for T seconds of 1-worker work, so a run needs T >~ 5 s to show the
scaling of the generate stage (T ~ 2 min). Images per CPU-second (this process and its workers)
go into the settings: they show the parallel overhead whatever else runs on the machine.

trdg's tool (`trdg`, trdg.run.main) gets the same words, fonts, height, skew, blur, colours and
margins, with one background type (it cannot mix them; ours then uses the same one) and
`-t` = our worker count. Its Pool forks; it writes PNG files, its only output. It runs with the one
fix it needs on current Pillow (`FreeTypeFont.getsize`, seqlab.tasks.ocr.synth.trdg_compat.patch_pillow)
and nothing else of ours (not the basic-layout speed-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seqlab.bench.report import figure
from seqlab.core.config import Params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.synth.fonts import font_path, usable_fonts
from seqlab.tasks.ocr.synth.trdg_render import (
    BACKGROUNDS,
    MARGINS,
    ImageSpec,
    RenderConfig,
    build_specs,
    render_images,
    word_source,
)

WORKERS = 2
TARGET = 1.8  # 2 workers vs 1 (issue 11)
CLI_BACKGROUND = "noise"
# trdg's entry point with Pillow's getsize restored (trdg 1.8 calls it; Pillow >= 10 removed it).
CLI = ("import sys; from seqlab.tasks.ocr.synth.trdg_compat import patch_pillow; patch_pillow(); "
       "from trdg.run import main; sys.argv[0] = 'trdg'; main()")


def run(params: Params, repeats: int, count: int, workdir: Path) -> tuple[dict[str, Any], list[np.ndarray], list[str]]:
    """The rendering section, and the images it rendered with their texts (the OCR benchmark reads them)."""
    data = OcrConfig.of(params).data
    charset = Charset.from_name(data.charset)
    fonts = [f for f in usable_fonts("all", charset)[0] if font_path(f).suffix == ".ttf"]
    cfg = RenderConfig.of(data)
    specs = build_specs(np.random.default_rng(params.seed), count, fonts, word_source(charset, data.words), data)
    render_images(specs[:2], cfg, 1, progress=False)  # warm-up: trdg imported in this process

    one: list[float] = []
    two: list[float] = []
    ours_cli: list[float] = []
    cli: list[float] = []
    cpu_rates: dict[str, list[float]] = {"1 worker": [], f"{WORKERS} workers": []}
    images: list[np.ndarray] = []
    cli_specs = [replace(s, background=BACKGROUNDS[CLI_BACKGROUND], distortion=0) for s in specs]
    for r in range(repeats):
        for workers, rates in ((1, one), (WORKERS, two)):
            seconds, cpu, result = _timed_render(specs, cfg, workers)
            rates.append(count / seconds)
            cpu_rates["1 worker" if workers == 1 else f"{WORKERS} workers"].append(round(count / cpu, 1))
            images = result
        ours_cli.append(count / _timed_render(cli_specs, cfg, WORKERS)[0])
        cli.append(count / _trdg_cli(cli_specs, cfg, fonts, workdir / f"trdg-cli-{r}"))

    figures = {
        f"{WORKERS} workers vs 1": figure(two, one, unit="img/s", ours_label=f"{WORKERS} workers",
                                          baseline_label="1 worker", target=TARGET),
        "vs trdg command line": figure(ours_cli, cli, unit="img/s", ours_label=f"render_images, {WORKERS} workers",
                                       baseline_label=f"trdg -t {WORKERS}"),
    }
    settings = {"images": count, "fonts": len(fonts), "height": cfg.height,
                "background_weights": data.background_weights.model_dump(), "cli_background": CLI_BACKGROUND,
                "images_per_cpu_s": cpu_rates}
    return {"settings": settings, "figures": figures}, images, [s.text for s in specs]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed_render(specs: list[ImageSpec], cfg: RenderConfig, workers: int) -> tuple[float, float, list[np.ndarray]]:
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    images = render_images(specs, cfg, workers, progress=False).images
    return time.perf_counter() - start, _cpu_seconds() - cpu_start, images


def _trdg_cli(specs: list[ImageSpec], cfg: RenderConfig, fonts: list[str], out: Path) -> float:
    """Seconds for trdg's command-line tool to write the same words in the same fonts and settings."""
    font_dir = out / "fonts"
    font_dir.mkdir(parents=True)
    for f in fonts:
        (font_dir / font_path(f).name).symlink_to(font_path(f))
    words = out / "words.txt"
    words.write_text("".join(f"{s.text}\n" for s in specs))
    cmd = [sys.executable, "-c", CLI, "-i", str(words), "-c", str(len(specs)), "-fd", str(font_dir),
           "-f", str(cfg.height), "-k", str(cfg.skew_angle), "-rk", "-bl", str(round(cfg.blur)), "-rbl",
           "-b", str(BACKGROUNDS[CLI_BACKGROUND]), "-tc", ",".join(cfg.text_colors),
           "-m", ",".join(map(str, MARGINS)), "-t", str(WORKERS), "-e", "png", "--output_dir", str(out / "images")]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    written = len(list((out / "images").glob("*.png")))
    if written < len(specs) * 0.99:  # trdg skips the odd image it cannot draw (see trdg findings)
        raise RuntimeError(f"trdg's command line wrote {written} of {len(specs)} images")
    return seconds
