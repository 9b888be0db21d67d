"""Headless Chromium screenshots of local pages (MLflow's compare page, DVC's plots page).

The pages are JavaScript apps: without --virtual-time-budget Chromium captures them before they have
drawn anything. The flags are those measured to work headless as root in a container with no network
(docs/experiments.md). Every helper process (renderer, zygote) shares the browser's process group and
is killed with it, so none outlives a capture.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--disable-dev-shm-usage")
# Virtual milliseconds a page may run before the capture (MLflow's compare page takes ~7 s of real time).
RENDER_BUDGET_MS = 20_000
# Resolves every host name to nothing: the page gets no network, whatever the machine has.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND"
# Chromium puts its singleton socket in a TMPDIR folder, and aborts (SIGABRT) when that path passes the
# ~108-byte limit of a Unix socket address, as under pytest's deep tmp paths: give it a short one.
SHORT_TMPDIR = "/tmp"


def find_chromium(explicit: str | None = None) -> str:
    for name in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    raise FileNotFoundError("no Chromium found: install Debian's `chromium` (apt-get install chromium) "
                            "or pass --chromium PATH")


def screenshot(url: str, out: Path, *, chromium: str, width: int, height: int, extra_flags: Sequence[str] = (),
               budget_ms: int = RENDER_BUDGET_MS, timeout: float = 180) -> None:
    """Save a `width` x `height` PNG of `url` as headless Chromium draws it, in a throwaway profile."""
    _run(chromium, [*extra_flags, f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
                    f"--screenshot={out}", url], timeout)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {url}")


def dump_dom(url: str, *, chromium: str, extra_flags: Sequence[str] = (), budget_ms: int = RENDER_BUDGET_MS,
             timeout: float = 180) -> str:
    """The page's DOM (HTML) once `url` has run for `budget_ms` virtual ms, in a fresh profile (empty storage)."""
    return _run(chromium, [*extra_flags, "--window-size=1400,900", f"--virtual-time-budget={budget_ms}",
                           "--dump-dom", url], timeout)


def _run(chromium: str, args: Sequence[str], timeout: float) -> str:
    env = dict(os.environ)
    if len(tempfile.gettempdir()) > 40 and os.path.isdir(SHORT_TMPDIR):
        env["TMPDIR"] = SHORT_TMPDIR
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp_dir:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp_dir) / 'profile'}", *args]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}:\n{err[-2000:]}")
    return out
