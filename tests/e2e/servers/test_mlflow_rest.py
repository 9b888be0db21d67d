"""The comparison, verified through MLflow itself: a server on 127.0.0.1 over the store that two queued
experiments with different params wrote, queried through its REST API, then stopped; and the
compare-page screenshot command."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import sys

import pytest

from tests.support import EXPERIMENT_LRS, TOOLS, run, tiny_params

sys.path.insert(0, str(TOOLS))  # the MLflow server helper is a documentation tool, not part of the package

from mlflow_server import api, group_members, start_server  # noqa: E402

EXPERIMENTS = ("q-a", "q-b")


@pytest.fixture(scope="module")
def server(exp_repo, queued_exps):
    srv = start_server(f"sqlite:///{exp_repo.db}", artifacts_destination=exp_repo.root / "mlartifacts",
                       log_path=exp_repo.root.parent / "mlflow-server.log", env=exp_repo.env)
    yield srv
    srv.stop()  # no-op when test_server_stops_with_its_process_group already stopped it


def _search(url: str, exp_id: str, filter_string: str) -> list[dict]:
    return api(url, "runs/search", {"experiment_ids": [exp_id], "filter": filter_string}).get("runs", [])


def test_rest_api_shows_both_experiments_with_params_metrics_and_history(server):
    assert server.url.startswith("http://127.0.0.1:")
    exp_id = api(server.url, "experiments/get-by-name?experiment_name=seqlab-binary_add")["experiment"]["experiment_id"]
    runs = {}
    for name in EXPERIMENTS:
        found = _search(server.url, exp_id, f"tags.`dvc.exp_name` = '{name}'")
        assert len(found) == 1, f"{name}: {len(found)} runs"
        runs[name] = found[0]

    finals = {}
    tiny = tiny_params()  # the params the experiments' template repo was made with
    for name, found_run in runs.items():
        params = {p["key"]: p["value"] for p in found_run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in found_run["data"]["metrics"]}
        assert float(params["train.lr"]) == EXPERIMENT_LRS[name]
        assert params["model.hidden_size"] == str(tiny["binary_add"]["model"]["hidden_size"])
        assert params["seed"] == str(tiny["seed"])
        assert found_run["info"]["status"] == "FINISHED" and found_run["info"]["run_name"] == name
        for key in ("final_val_loss", "final_val_bit_accuracy", "test.exact_match"):
            assert math.isfinite(metrics[key]), key
        finals[name] = metrics["final_val_loss"]
        # per-epoch history: one point per epoch (tiny params train 2 epochs), steps 1..2
        for key in ("train_loss", "val_loss"):
            history = api(server.url, f"metrics/get-history?run_id={found_run['info']['run_id']}&metric_key={key}")
            points = sorted(history["metrics"], key=lambda m: m["step"])
            assert [p["step"] for p in points] == [1, 2], (name, key, points)
            assert all(math.isfinite(p["value"]) for p in points)
        val = api(server.url, f"metrics/get-history?run_id={found_run['info']['run_id']}&metric_key=val_loss")["metrics"]
        assert metrics["final_val_loss"] in {p["value"] for p in val}  # the final is the best epoch's value
    assert finals["q-a"] != finals["q-b"]
    # the server filters on params too: each lr selects exactly its own run
    for name in EXPERIMENTS:
        found = _search(server.url, exp_id, f"params.`train.lr` = '{EXPERIMENT_LRS[name]}'")
        assert [r["info"]["run_id"] for r in found] == [runs[name]["info"]["run_id"]]


def test_server_stops_with_its_process_group(server):
    pgid = server.pgid
    assert group_members(pgid)
    server.stop()
    assert server.process.returncode is not None
    assert not group_members(pgid)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), 2):
        pass


@pytest.mark.skipif(not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
                    reason="needs Chromium (apt-get install chromium)")
def test_compare_page_screenshot(exp_repo, queued_exps, tmp_path):
    from PIL import Image

    out = tmp_path / "compare.png"
    proc = run([sys.executable, str(TOOLS / "mlflow_compare.py"), "--out", str(out), "--runs", "2"], exp_repo.root,
               exp_repo.env, timeout=300)
    assert "compare page of 2 runs of seqlab-binary_add" in proc.stdout
    with Image.open(out) as img:
        assert img.width == 1400 and 800 < img.height <= 2600
        # a rendered page, not a blank one: many distinct colours across the picture
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20
    assert out.stat().st_size < 300_000
    # no server or browser left behind
    leftovers = subprocess.run(["pgrep", "-f", f"{exp_repo.db}"], capture_output=True, text=True).stdout.split()
    assert not leftovers
