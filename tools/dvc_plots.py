"""`dvc plots show` / `dvc plots diff` as an HTML page that draws without a network.

    python tools/dvc_plots.py [show|diff] [DVC ARGS...] [--out dvc_plots] [--screenshot PNG]

DVC's page loads Vega, Vega-Lite and vega-embed from a CDN, so offline it stays blank (`vegaEmbed is
not defined`). `make install` puts those three (BSD-3-Clause, pinned in tools/vega/package-lock.json)
under tools/vega/node_modules with `npm ci`; this tool writes an HTML template with their minified
builds inlined and hands it to DVC's `--html-template`. The template has no `{scripts}` placeholder,
so DVC adds no CDN tags, and the page (`<out>/index.html`) is self-contained: it draws from a file://
URL, a CI artifact or a machine with no network.

`--screenshot PNG` has headless Chromium, with every host name unresolvable, capture the page, and
fails unless chart curves were drawn (pixels in the colours DVC draws lines in; axes and text are grey).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from chromium import NO_NETWORK, find_chromium, screenshot

VEGA_DIR = Path(__file__).resolve().parent / "vega"
# Load order matters: vega-lite and vega-embed look up the globals the earlier bundles define.
BUNDLES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
# What dvc_render's HTML class substitutes in a template; `{scripts}` is left out on purpose (the CDN tags).
PLOTS_PLACEHOLDER = "{plot_divs}"
PLACEHOLDERS = ("{scripts}", PLOTS_PLACEHOLDER, "{refresh_tag}")
# A pixel counts as curve when it is within this RGB distance of a colour DVC draws lines in (its
# templates' palette); axes, grid and text are grey and the page's own widgets another blue. A drawn
# line chart here has ~1,500 of them, a blank page none.
CURVE_COLOUR_DISTANCE = 40
# The colour range of dvc-render 1.0's templates (dvc_render.vega.OPTIONAL_ANCHOR_RANGES["color"]); a new
# palette there makes the test's capture count nothing, so it cannot go stale unnoticed.
CURVE_COLOURS = ("#945dd6", "#13adc7", "#f46837", "#48bb78", "#4299e1", "#ed8936", "#f56565")
MIN_CURVE_PIXELS = 200

PAGE = """<!DOCTYPE html>
<html>
<head>
{refresh_tag}
<meta charset="utf-8">
<title>DVC Plots</title>
{vega}
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def offline_template(node_modules: Path = VEGA_DIR / "node_modules") -> str:
    """DVC's page layout with the three bundles inlined; raises FileNotFoundError naming the fix."""
    scripts = []
    for rel in BUNDLES:
        path = node_modules / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `make install` (npm ci in {VEGA_DIR}; needs npm)")
        code = path.read_text(encoding="utf8")
        # Inlined code must not end its own <script> element, nor hold a placeholder DVC would replace.
        if "</script" in code.lower() or any(p in code for p in PLACEHOLDERS):
            raise ValueError(f"{path} cannot be inlined (holds '</script' or a DVC template placeholder)")
        scripts.append(f"<script>/* {rel} */\n{code}\n</script>")
    return PAGE.format(vega="\n".join(scripts), refresh_tag="{refresh_tag}", plot_divs=PLOTS_PLACEHOLDER)


def dvc_command() -> list[str]:
    # This interpreter's environment first, so a venv's dvc runs even when the venv is not on PATH.
    exe = Path(sys.executable).with_name("dvc")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def render(command: str, dvc_args: list[str], out: Path, cwd: Path | None = None) -> Path:
    """Run `dvc plots <command> ... -o out` with the offline template; return the page's path."""
    with tempfile.TemporaryDirectory(prefix="dvc-plots-") as tmp:
        template = Path(tmp) / "offline.html"
        template.write_text(offline_template(), encoding="utf8")
        proc = subprocess.run([*dvc_command(), "plots", command, *dvc_args, "--html-template", str(template),
                               "-o", str(out)], cwd=cwd, capture_output=True, text=True)
    detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    last = f": {detail[-1]}" if detail else ""
    if proc.returncode != 0:
        raise RuntimeError(f"dvc plots {command} failed ({proc.returncode}){last}")
    page = (cwd or Path.cwd()) / out / "index.html"
    if not page.is_file():  # DVC exits 0 without a page when a plot's file is missing (not pulled, not built)
        raise RuntimeError(f"dvc plots {command} wrote no {page}{last}")
    return page


def curve_pixels(png: Path) -> int:
    """Pixels of `png` in the colours of DVC's lines and points (not its grey axes, grid or text)."""
    import numpy as np
    from PIL import Image

    palette = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in CURVE_COLOURS])
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int32)
    distance = np.sqrt(((rgb[:, :, None, :] - palette[None, None]) ** 2).sum(axis=3)).min(axis=2)
    return int((distance <= CURVE_COLOUR_DISTANCE).sum())


def capture(page: Path, png: Path, *, chromium: str, width: int = 1200, height: int = 1600) -> int:
    """Screenshot `page` with no network; return its curve pixels."""
    screenshot(page.resolve().as_uri(), png, chromium=chromium, width=width, height=height, extra_flags=(NO_NETWORK,))
    return curve_pixels(png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/dvc_plots.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=("show", "diff"), default="show", help="dvc plots subcommand")
    parser.add_argument("--out", type=Path, default=Path("dvc_plots"), help="directory of index.html (default dvc_plots)")
    parser.add_argument("--screenshot", type=Path, help="also capture the page offline to this PNG; fail if no curve is drawn")
    parser.add_argument("--chromium", help="Chromium binary (default: chromium, chromium-browser, google-chrome)")
    args, dvc_args = parser.parse_known_args(argv)  # the rest goes to dvc: targets, revisions, --title...
    try:
        page = render(args.command, dvc_args, args.out)
        print(page.resolve().as_uri())
        if args.screenshot:
            drawn = capture(page, args.screenshot, chromium=find_chromium(args.chromium))
            if drawn < MIN_CURVE_PIXELS:
                print(f"error: {args.screenshot}: no curves drawn ({drawn} coloured pixels)", file=sys.stderr)
                return 1
            print(f"{args.screenshot}: {drawn} curve pixels drawn offline")
    except (FileNotFoundError, ValueError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
