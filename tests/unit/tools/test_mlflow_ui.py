"""`tools/mlflow_ui.py`: the links `make ui` prints open MLflow's UI on the training runs in a fresh browser.

A tiny store with one seqlab experiment (tagged as model training, as tracking.py tags them) and one run
is served locally; headless Chromium with an empty profile dumps the DOM of the UI's own experiment link
(the control: MLflow's GenAI Overview) and of ours (the runs table, Model-training sidebar).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import TOOLS

sys.path.insert(0, str(TOOLS))  # the browser and server helpers are tools, not part of the package

import chromium  # noqa: E402
import mlflow_ui  # noqa: E402

pytestmark = pytest.mark.slow


def _chromium() -> str:
    try:
        return chromium.find_chromium()
    except FileNotFoundError:
        pytest.skip("no Chromium (apt-get install chromium)")


@pytest.fixture
def toy_store(tmp_path: Path) -> str:
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.runs import EXPERIMENT_KIND

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    exp_id = client.create_experiment("seqlab-toy", artifact_location=str(tmp_path / "artifacts"),
                                      tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]})
    for name, loss in (("toy-training-run", 0.5), ("toy-run-2", 0.4)):
        run = client.create_run(exp_id, run_name=name)
        client.log_metric(run.info.run_id, "val_loss", loss)
        client.set_terminated(run.info.run_id)
    return store


def test_links_name_the_runs_tab_in_model_training_chrome(toy_store: str, capsys) -> None:
    assert mlflow_ui.main(["links", "--store", toy_store, "--base", "http://127.0.0.1:5000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = lines[0].split()
    assert out[0] == "seqlab-toy"
    assert out[1].endswith("/runs?workflowType=machine_learning")
    # The runs table shows no metric column until picked; the compare view of the latest runs shows them all.
    compare = lines[1].split()
    assert compare[:3] == ["compare", "latest", "2"] and "/#/compare-runs?runs=" in compare[3]


def test_a_fresh_browser_lands_on_the_training_runs(toy_store: str, tmp_path: Path) -> None:
    problems = mlflow_ui.check(toy_store, "seqlab-toy", tmp_path / "landing.png", _chromium())
    assert problems == []
    assert (tmp_path / "landing.png").stat().st_size > 10_000


def test_genai_chrome_is_recognised() -> None:
    # The check's two verdicts rest on this: the GenAI sidebar's entries are found, the other's are not.
    assert mlflow_ui.genai_chrome("seqlab-kth Overview Training runs Traces Sessions Judges Review Playground")
    assert not mlflow_ui.genai_chrome("seqlab-kth Runs Models Traces Model registry")
