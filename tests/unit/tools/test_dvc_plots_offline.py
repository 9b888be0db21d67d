"""`tools/dvc_plots.py`: DVC's plots page draws its curves with no network.

A tiny DVC repo with one plots definition (a loss curve per epoch) is rendered twice and captured by
headless Chromium with every host name unresolvable: DVC's own page (Vega from a CDN) draws nothing,
the tool's page (Vega inlined from tools/vega/node_modules) draws the curves.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TOOLS, run, sandbox_env

sys.path.insert(0, str(TOOLS))  # the plots and browser helpers are tools, not part of the package

import chromium  # noqa: E402
import dvc_plots  # noqa: E402


def _have_chromium() -> bool:
    try:
        chromium.find_chromium()
        return True
    except FileNotFoundError:
        return False


def _have_vega() -> bool:
    try:
        dvc_plots.offline_template()
        return True
    except FileNotFoundError:
        return False


@pytest.fixture
def plots_repo(tmp_path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    env = sandbox_env(tmp_path)
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    rows = "".join(f"{e},{math.exp(-e / 5):.4f},{math.exp(-e / 6) + 0.05:.4f}\n" for e in range(1, 31))
    (repo / "metrics" / "history.csv").write_text("epoch,train_loss,val_loss\n" + rows)
    (repo / "dvc.yaml").write_text("plots:\n  - Loss per epoch:\n      x: epoch\n"
                                   "      y:\n        metrics/history.csv: [train_loss, val_loss]\n")
    return repo, env


def test_template_inlines_vega_and_keeps_dvcs_placeholders(tmp_path):
    if not _have_vega():
        pytest.skip("Vega not installed: `make install` runs npm ci in tools/vega (needs npm)")
    page = dvc_plots.offline_template()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN <script src> tags
    assert "<script src" not in page and page.count("<script>") == len(dvc_plots.BUNDLES)


def test_missing_vega_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="make install"):
        dvc_plots.offline_template(tmp_path / "node_modules")


@pytest.mark.slow  # dvc twice and Chromium twice, ~10 s
@pytest.mark.skipif(not _have_chromium(), reason="needs Chromium (apt-get install chromium)")
@pytest.mark.skipif(not _have_vega(), reason="Vega not installed: `make install` runs npm ci in tools/vega (needs npm)")
def test_plots_page_draws_curves_offline(plots_repo, tmp_path):
    repo, env = plots_repo
    browser = chromium.find_chromium()

    # Control: DVC's own page, with no network, draws no curve (the check can tell drawn from blank).
    run(["dvc", "plots", "show", "-o", "cdn"], repo, env)
    assert dvc_plots.capture(repo / "cdn" / "index.html", tmp_path / "cdn.png", chromium=browser) == 0

    out = tmp_path / "offline.png"
    proc = subprocess.run([sys.executable, str(TOOLS / "dvc_plots.py"), "show", "--screenshot", str(out)], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = repo / "dvc_plots" / "index.html"
    assert page.as_uri() in proc.stdout and "curve pixels drawn offline" in proc.stdout
    assert "<script src" not in page.read_text()
    assert dvc_plots.curve_pixels(out) >= dvc_plots.MIN_CURVE_PIXELS


def test_screenshot_of_a_blank_page_fails(plots_repo, tmp_path, monkeypatch):
    """The tool exits 1 with one line when the page draws nothing (here: the capture is a blank image)."""
    from PIL import Image

    repo, env = plots_repo
    for key, value in env.items():  # dvc runs in the sandbox
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(repo)
    monkeypatch.setattr(dvc_plots, "offline_template", lambda: "<html>{plot_divs}</html>")
    monkeypatch.setattr(dvc_plots, "find_chromium", lambda explicit=None: "chromium")
    monkeypatch.setattr(dvc_plots, "screenshot",
                        lambda url, png, **kw: Image.new("RGB", (200, 100), "white").save(png))
    assert dvc_plots.main(["--screenshot", str(tmp_path / "blank.png")]) == 1
