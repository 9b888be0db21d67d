"""Render MLflow's compare-runs page for the latest runs of an experiment to a PNG.

    python tools/mlflow_compare.py --out docs/mlflow-compare.png [--experiment seqlab-binary_add] [--runs 2]

Starts a light MLflow server on 127.0.0.1 against the repository's store (or uses
MLFLOW_TRACKING_URI when that is an http(s) server), finds the latest finished runs through the
REST API, opens `#/compare-runs` in headless Chromium and stops the server again. The page is a
JavaScript app, so a plain `chromium --screenshot` captures it before it has drawn anything unless
given --virtual-time-budget; driving Chromium over its DevTools pipe instead waits until the
comparison is there, switches the tables to "Show diff only" and captures the whole comparison.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from mlflow_server import api, mlflow_server

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags measured to work headless as root in a container with no network (see docs/experiments.md).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--disable-dev-shm-usage")

# The UI opens its "Assistant" side panel only when the page's hostname is localhost/127.0.0.1; the
# browser reaches the server through this alias (mapped to 127.0.0.1) so the screenshot shows the
# comparison at full width.
BROWSER_HOST = "mlflow-compare.internal"


def find_chromium(explicit: str | None = None) -> str:
    for name in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    raise FileNotFoundError("no Chromium found: install Debian's `chromium` (apt-get install chromium) "
                            "or pass --chromium PATH")


def latest_runs(base_url: str, experiment: str, count: int) -> tuple[str, list[dict]]:
    """(experiment id, the `count` most recent FINISHED runs, newest first) via the REST API."""
    exp = api(base_url, f"experiments/get-by-name?experiment_name={urllib.parse.quote(experiment)}")["experiment"]
    found = api(base_url, "runs/search", {
        "experiment_ids": [exp["experiment_id"]], "filter": "attributes.status = 'FINISHED'",
        "order_by": ["attributes.start_time DESC"], "max_results": count,
    }).get("runs", [])
    return exp["experiment_id"], found


def compare_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    # The UI's own route (getCompareRunPageRoute): JSON lists in the hash-router query string.
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])})
    return f"{base_url}/#/compare-runs?{query}"


class _DevTools:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3/4, NUL-framed JSON).

    A pipe needs no port and no websocket library; it lets the script wait until the page has
    really rendered, flip the "Show diff only" switches and capture the full comparison.
    """

    def __init__(self, cmd: list[str], log: Path) -> None:
        child_in, self._w = os.pipe()  # Chromium reads commands on fd 3 ...
        self._r, child_out = os.pipe()  # ... and writes replies on fd 4

        def wire_fds() -> None:  # runs in the child before exec, before non-passed fds are closed
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.log = log  # a file, not a pipe: nobody reads Chromium's chatter while it runs
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen([*cmd, "--remote-debugging-pipe"], pass_fds=(3, 4), preexec_fn=wire_fds,
                                         stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self._buf, self._id = b"", 0
        self.session: str | None = None

    def call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        self._id += 1
        msg: dict = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:  # everything else is an event we do not need
                    if "error" in reply:
                        raise RuntimeError(f"chromium {method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer {method} within {timeout:.0f}s")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    err = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"chromium exited ({self.proc.poll()}):\n{err}")
                self._buf += chunk

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session = None
            self.call("Browser.close", timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # renderer/zygote helpers share the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


# Run in the page once the comparison has rendered: show only the rows that differ between the runs
# and fold the Artifacts section (empty preview boxes add nothing to the picture).
_TIDY_PAGE_JS = """(() => {
  for (const sw of document.querySelectorAll('[role=switch][aria-label$="Show diff only"]')) {
    if (sw.getAttribute('aria-checked') !== 'true') sw.click();
  }
  for (const header of document.querySelectorAll('[role=button][aria-expanded=true]')) {
    if (header.textContent.trim() === 'Artifacts') header.click();
  }
  return true;
})()"""
# Bottom of the comparison: the lowest element right of the sidebar that is not a full-height frame.
_CONTENT_BOTTOM_JS = """(() => {
  const title = [...document.querySelectorAll('h1, h2')].find(h => h.textContent.startsWith('Comparing'));
  const left = title ? title.getBoundingClientRect().left - 24 : 0;
  let bottom = 0;
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.height > 0 && r.height < window.innerHeight * 0.8 && r.left >= left) bottom = Math.max(bottom, r.bottom);
  }
  return Math.ceil(bottom);
})()"""


def screenshot(url: str, out: Path, *, chromium: str, width: int, max_height: int, timeout: float = 90) -> None:
    """Open `url` in headless Chromium, wait for the comparison, tidy the page and save a PNG of it."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        tools = _DevTools([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000",
                           f"--host-resolver-rules=MAP {BROWSER_HOST} 127.0.0.1"], Path(profile) / "chromium.log")
        try:
            target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            tools.session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            tools.call("Page.navigate", {"url": url})
            deadline = time.monotonic() + timeout
            ready = "document.body && document.body.innerText.includes('Show diff only')"
            while not tools.evaluate(ready):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the compare page did not render within {timeout:.0f}s: {url}")
                time.sleep(0.5)
            # A tall viewport, so the app's own scrolling pane holds the whole comparison.
            tools.call("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": max_height, "deviceScaleFactor": 1, "mobile": False})
            time.sleep(2)  # let the charts finish drawing
            tools.evaluate(_TIDY_PAGE_JS)
            time.sleep(1.5)
            height = min(int(tools.evaluate(_CONTENT_BOTTOM_JS) or max_height) + 16, max_height)
            shot = tools.call("Page.captureScreenshot", {
                "format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
            out.write_bytes(base64.b64decode(shot["data"]))
        finally:
            tools.close()


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
    from seqlab.tracking import tracking_uri

    parser = argparse.ArgumentParser(prog="python tools/mlflow_compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--experiment", default="seqlab-binary_add", help="MLflow experiment name")
    parser.add_argument("--runs", type=int, default=2, help="how many of the latest finished runs to compare (>= 2)")
    parser.add_argument("--store", help="tracking URI (default: the repository's store, or MLFLOW_TRACKING_URI)")
    parser.add_argument("--chromium", help="Chromium binary (default: chromium, chromium-browser, google-chrome)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--max-height", type=int, default=2600, help="crop the page at this many pixels")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    store = args.store or tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
        print(f"error: no MLflow store at {store}; run some experiments first", file=sys.stderr)
        return 1
    try:
        return _render(args, store, find_chromium(args.chromium))
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:  # no browser, unknown experiment, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _render(args: argparse.Namespace, store: str, chromium: str) -> int:
    from seqlab.paths import repo_root

    artifacts = repo_root() / "mlartifacts" if store.startswith("sqlite:") else None
    with tracking_server(store, artifacts) as (base, browser_base):
        exp_id, runs = latest_runs(base, args.experiment, args.runs)
        if len(runs) < 2:
            print(f"error: {args.experiment} has {len(runs)} finished run(s); need 2 to compare", file=sys.stderr)
            return 1
        ids = [r["info"]["run_id"] for r in runs]
        url = compare_url(browser_base, exp_id, ids)
        with tempfile.TemporaryDirectory(prefix="mlflow-compare-") as tmp:
            raw = Path(tmp) / "raw.png"
            screenshot(url, raw, chromium=chromium, width=args.width, max_height=args.max_height)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shrink_png(raw, args.out)
    names = ", ".join(r["info"].get("run_name", r["info"]["run_id"][:8]) for r in runs)
    print(f"{args.out}: compare page of {len(runs)} runs of {args.experiment} ({names}), "
          f"{args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
