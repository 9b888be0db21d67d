"""Render MLflow's compare-runs page for the latest runs of an experiment to a PNG.

    python tools/mlflow_compare.py --out docs/mlflow-compare.png [--experiment seqlab-binary_add] [--runs 2]

Starts a light MLflow server on 127.0.0.1 against the repository's store (or uses
MLFLOW_TRACKING_URI when that is an http(s) server), finds the latest finished runs through the
REST API, has headless Chromium screenshot `#/compare-runs` and stops the server again. The page is
a JavaScript app: without --virtual-time-budget Chromium captures it before it has drawn anything.
A small content script (loaded as an unpacked extension) flips the page's "Show diff only"
switches, so the tables show the params and metrics that differ instead of a scrolled list.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from chromium import find_chromium, screenshot
from mlflow_server import api, mlflow_server

# The UI opens its "Assistant" side panel only when the page's hostname is localhost/127.0.0.1; the
# browser reaches the server through this alias (mapped to 127.0.0.1) so the screenshot shows the
# comparison at full width.
BROWSER_HOST = "mlflow-compare.internal"

# The switches are React state with no URL or storage knob; the extension clicks them once drawn.
_DIFF_ONLY_MANIFEST = {"manifest_version": 3, "name": "show-diff-only", "version": "1.0",
                       "content_scripts": [{"matches": ["<all_urls>"], "js": ["diff_only.js"]}]}
_DIFF_ONLY_JS = """const flip = setInterval(() => {
  const switches = document.querySelectorAll('[role=switch][aria-label$="Show diff only"]');
  if (!switches.length) return;
  for (const sw of switches) if (sw.getAttribute('aria-checked') !== 'true') sw.click();
  clearInterval(flip);
}, 250);
"""


def latest_runs(base_url: str, experiment: str, count: int) -> tuple[str, list[dict]]:
    """(experiment id, the `count` most recent FINISHED runs, newest first) via the REST API."""
    exp = api(base_url, f"experiments/get-by-name?experiment_name={urllib.parse.quote(experiment)}")["experiment"]
    found = api(base_url, "runs/search", {
        "experiment_ids": [exp["experiment_id"]], "filter": "attributes.status = 'FINISHED'",
        "order_by": ["attributes.start_time DESC"], "max_results": count,
    }).get("runs", [])
    return exp["experiment_id"], found


def compare_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    # The UI's own route (getCompareRunPageRoute): JSON lists in the hash-router query string; workflowType
    # puts the sidebar on Model training, as `make ui`'s links do (tools/mlflow_ui.py says why).
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id]),
                                    "workflowType": "machine_learning"})
    return f"{base_url}/#/compare-runs?{query}"


def screenshot_compare(url: str, out: Path, *, chromium: str, width: int, height: int) -> None:
    """Save a `width` x `height` PNG of the compare page, its "Show diff only" switches flipped."""
    with tempfile.TemporaryDirectory(prefix="show-diff-only-") as tmp_dir:
        extension = Path(tmp_dir)
        (extension / "manifest.json").write_text(json.dumps(_DIFF_ONLY_MANIFEST))
        (extension / "diff_only.js").write_text(_DIFF_ONLY_JS)
        screenshot(url, out, chromium=chromium, width=width, height=height,
                   extra_flags=(f"--load-extension={extension}", f"--disable-extensions-except={extension}",
                                f"--host-resolver-rules=MAP {BROWSER_HOST} 127.0.0.1"))


def shrink_png(src: Path, dest: Path, colors: int = 256) -> None:
    """Palette-quantise a UI screenshot (flat colours: no visible loss) so it is small enough for git."""
    from PIL import Image

    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


@contextlib.contextmanager
def tracking_server(store: str, artifacts: Path | None) -> Iterator[tuple[str, str]]:
    """Yield (REST base URL, browser base URL): the store itself if it is a server, else a local one."""
    if store.startswith(("http://", "https://")):
        yield store.rstrip("/"), store.rstrip("/")
        return
    with mlflow_server(store, artifacts_destination=artifacts, extra_allowed_hosts=(BROWSER_HOST,)) as srv:
        yield srv.url, srv.url.replace("127.0.0.1", BROWSER_HOST, 1)


def main(argv: list[str] | None = None) -> int:
    from seqlab.tracking.runs import tracking_uri

    parser = argparse.ArgumentParser(prog="python tools/mlflow_compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--experiment", default="seqlab-binary_add", help="MLflow experiment name")
    parser.add_argument("--runs", type=int, default=2, help="how many of the latest finished runs to compare (>= 2)")
    parser.add_argument("--store", help="tracking URI (default: the repository's store, or MLFLOW_TRACKING_URI)")
    parser.add_argument("--chromium", help="Chromium binary (default: chromium, chromium-browser, google-chrome)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800, help="the page is cut at this many pixels")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    store = args.store or tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
        print(f"error: no MLflow store at {store}; run some experiments first", file=sys.stderr)
        return 1
    try:
        return _render(args, store, find_chromium(args.chromium))
    except (FileNotFoundError, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)  # no browser, unknown experiment, a server that never came up...
        return 1


def _render(args: argparse.Namespace, store: str, chromium: str) -> int:
    from seqlab.core.paths import repo_root

    artifacts = repo_root() / "mlartifacts" if store.startswith("sqlite:") else None
    with tracking_server(store, artifacts) as (base, browser_base):
        exp_id, runs = latest_runs(base, args.experiment, args.runs)
        if len(runs) < 2:
            print(f"error: {args.experiment} has {len(runs)} finished run(s); need 2 to compare", file=sys.stderr)
            return 1
        url = compare_url(browser_base, exp_id, [r["info"]["run_id"] for r in runs])
        with tempfile.TemporaryDirectory(prefix="mlflow-compare-") as tmp:
            raw = Path(tmp) / "raw.png"
            screenshot_compare(url, raw, chromium=chromium, width=args.width, height=args.height)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shrink_png(raw, args.out)
    names = ", ".join(r["info"].get("run_name", r["info"]["run_id"][:8]) for r in runs)
    print(f"{args.out}: compare page of {len(runs)} runs of {args.experiment} ({names}), "
          f"{args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
