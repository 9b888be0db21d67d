"""Word-image rendering speed with 1 and 2 worker processes (target: 2 workers >= 1.8x one).

    python benchmarks/bench_render.py [--count 2000]

Times `render_images` end to end, pool start-up (~1-2 s) included, so use a realistic count;
runs params.yaml's background mix and one without quasicrystal, and checks that both worker
counts give identical images. Other processes on the machine skew wall-clock figures (the load
average is printed); images per CPU-second show the parallel overhead regardless.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from seqlab.config import load_params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.fonts import usable_fonts
from seqlab.tasks.ocr.render import RenderConfig, build_specs, render_images
from seqlab.tasks.ocr.words import WordSource

PARAMS = load_params().ocr.data.model_dump()  # the rendering knobs of params.yaml, as the stage gets them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images per run")
    args = parser.parse_args()

    charset = Charset.from_name(PARAMS["charset"])
    words = WordSource(charset, **PARAMS["words"])
    fonts, _ = usable_fonts(PARAMS["fonts"], charset)
    cfg = RenderConfig.from_params(PARAMS)
    no_quasicrystal = {**PARAMS, "background_weights": {**PARAMS["background_weights"], "quasicrystal": 0}}
    for label, params in (("default mix", PARAMS), ("no quasicrystal", no_quasicrystal)):
        specs = build_specs(np.random.default_rng(0), args.count, fonts, words, params)
        rates, cpu_rates, outputs = {}, {}, {}
        for workers in (1, 2):
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            outputs[workers] = render_images(specs, cfg, workers, progress=False).images
            rates[workers] = len(specs) / (time.perf_counter() - start)
            cpu_rates[workers] = len(specs) / (_cpu_seconds() - cpu_start)
        same = all(np.array_equal(a, b) for a, b in zip(outputs[1], outputs[2], strict=True))
        print(
            f"{label}, {args.count} images: 1 worker {rates[1]:.1f} img/s, 2 workers {rates[2]:.1f} img/s "
            f"(speed-up {rates[2] / rates[1]:.2f}x); per CPU-second {cpu_rates[1]:.1f} vs {cpu_rates[2]:.1f}; "
            f"identical: {same}; load average {os.getloadavg()[0]:.2f}"
        )


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    main()
