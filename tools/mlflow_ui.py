"""Links that open MLflow's UI on seqlab's training runs, and a headless-Chromium check that they do.

    python tools/mlflow_ui.py links [--store URI] [--base http://127.0.0.1:5000]
    python tools/mlflow_ui.py check [--store URI] [--out docs/mlflow-ui-training-runs.png]

MLflow 3.17/3.18 keeps the sidebar's workflow type (GenAI or Model training) in the browser's
localStorage, default GenAI, and does not reconcile it with the experiment's `mlflow.experimentKind`
tag (mlflow/mlflow#24498): a fresh browser on `#/experiments/<id>` lands on the GenAI *Overview*
(traces, latency). The UI reads the type from the URL first (`?workflowType=machine_learning`), so
the link to the runs tab with that parameter opens the training runs in Model-training chrome, in any
browser. The runs table shows no metric or parameter column until you pick them (*Columns*), and its URL
cannot carry a column choice (the runs page reads only searchFilter, orderByKey, orderByAsc, startTime and
the lifecycle, model-version and dataset filters from it), so `links` also prints the compare view of the
latest finished runs (`#/compare-runs`): their params and metrics side by side, no clicks.
`make ui` prints these links. `check` proves it: a fresh Chromium profile (empty storage)
dumps the DOM of the plain experiment link and of ours; ours must show the runs table and no GenAI
sidebar, and the plain one (the control) must show the GenAI sidebar.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from chromium import dump_dom, find_chromium, screenshot
from mlflow_compare import compare_url, shrink_png
from mlflow_server import api, mlflow_server

EXPERIMENT_PREFIX = "seqlab-"
# Entries of the GenAI sidebar that the Model-training sidebar does not have (MLflow 3.17).
GENAI_SIDEBAR = ("Sessions", "Judges", "Playground")
BROWSER_HOST = "mlflow-ui.internal"  # not localhost: the UI opens its Assistant panel only on loopback names


def runs_link(base_url: str, experiment_id: str) -> str:
    """The experiment's training-runs tab, in Model-training chrome whatever the browser stored."""
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiment_link(base_url: str, experiment_id: str) -> str:
    """The UI's own link to an experiment (lands on the GenAI Overview in a fresh browser)."""
    return f"{base_url}/#/experiments/{experiment_id}"


COMPARED_RUNS = 5  # the compare link's latest finished runs


def latest_run_ids(store: str, experiment_id: str, count: int = COMPARED_RUNS) -> list[str]:
    """The ids of an experiment's `count` latest finished runs, newest first, read without a server."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri=store).search_runs([experiment_id], "attributes.status = 'FINISHED'",
                                                        order_by=["attributes.start_time DESC"], max_results=count)
    return [r.info.run_id for r in runs]


def seqlab_experiments(rest_url: str) -> list[tuple[str, str]]:
    """(id, name) of the seqlab experiments on a running server, by name."""
    found = api(rest_url, "experiments/search", {"max_results": 1000}).get("experiments", [])
    return sorted((e["experiment_id"], e["name"]) for e in found if e["name"].startswith(EXPERIMENT_PREFIX))


def store_experiments(store: str) -> list[tuple[str, str]]:
    """(id, name) of the seqlab experiments in a store, read without a server."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=store).search_experiments(max_results=1000)
    return sorted((e.experiment_id, e.name) for e in found if e.name.startswith(EXPERIMENT_PREFIX))


def page_text(dom: str) -> str:
    """The visible words of a dumped DOM (tags, styles and scripts removed)."""
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def genai_chrome(text: str) -> bool:
    return all(entry in text for entry in GENAI_SIDEBAR)


def check(store: str, experiment: str | None, out: Path | None, chromium: str) -> list[str]:
    """Problems found (empty: our link lands on the training runs and the control on GenAI)."""
    flags = (f"--host-resolver-rules=MAP {BROWSER_HOST} 127.0.0.1, MAP * ~NOTFOUND",)
    with mlflow_server(store, extra_allowed_hosts=(BROWSER_HOST,)) as srv:
        experiments = seqlab_experiments(srv.url)
        if experiment:
            experiments = [e for e in experiments if e[1] == experiment]
        if not experiments:
            return [f"no {experiment or EXPERIMENT_PREFIX + '*'} experiment in {store}"]
        exp_id, name = experiments[0]
        runs = api(srv.url, "runs/search", {"experiment_ids": [exp_id], "max_results": 1}).get("runs", [])
        base = srv.url.replace("127.0.0.1", BROWSER_HOST, 1)
        ours = page_text(dump_dom(runs_link(base, exp_id), chromium=chromium, extra_flags=flags))
        plain = page_text(dump_dom(experiment_link(base, exp_id), chromium=chromium, extra_flags=flags))
        problems = []
        if genai_chrome(ours):
            problems.append(f"{name}: the runs link shows the GenAI sidebar")
        if runs and (run_name := runs[0]["info"].get("run_name")) and run_name not in ours:
            problems.append(f"{name}: the runs link does not list run {run_name}")
        if not genai_chrome(plain):  # the control: if MLflow fixes the default, this check says so
            problems.append(f"{name}: control failed: the plain experiment link no longer shows GenAI chrome "
                            "(MLflow changed its default? the workflowType parameter may be unneeded)")
        if out is not None and not problems:
            with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp:
                raw = Path(tmp) / "raw.png"
                screenshot(runs_link(base, exp_id), raw, chromium=chromium, width=1400, height=900,
                           extra_flags=flags)
                out.parent.mkdir(parents=True, exist_ok=True)
                shrink_png(raw, out)
    return problems


def main(argv: list[str] | None = None) -> int:
    from seqlab.tracking.runs import tracking_uri

    parser = argparse.ArgumentParser(prog="python tools/mlflow_ui.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    links = sub.add_parser("links", help="print each seqlab experiment's training-runs link and compare link")
    links.add_argument("--base", default="http://127.0.0.1:5000", help="where the UI is served")
    chk = sub.add_parser("check", help="prove with headless Chromium that the links land on the training runs")
    chk.add_argument("--experiment", help="experiment name (default: the first seqlab-* one)")
    chk.add_argument("--out", type=Path, help="also save a screenshot of the landing page (PNG)")
    chk.add_argument("--chromium", help="Chromium binary")
    for p in (links, chk):
        p.add_argument("--store", help="tracking URI (default: the repository's store, or MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    store = args.store or tracking_uri()

    if args.command == "links":
        if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
            print("MLflow UI: no runs yet (run `make pipeline`); then open the seqlab-* experiments' Runs tab")
            return 0
        base = args.base.rstrip("/")
        for exp_id, name in store_experiments(store):
            print(f"{name:<22} {runs_link(base, exp_id)}")
            if len(run_ids := latest_run_ids(store, exp_id)) >= 2:
                print(f"{'  compare latest ' + str(len(run_ids)):<22} {compare_url(base, exp_id, run_ids)}")
        return 0
    try:
        problems = check(store, args.experiment, args.out, find_chromium(args.chromium))
    except (FileNotFoundError, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print("the training-runs link lands on the runs table in Model-training chrome (fresh profile); "
              "the plain experiment link on GenAI chrome" + (f"; screenshot {args.out}" if args.out else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
