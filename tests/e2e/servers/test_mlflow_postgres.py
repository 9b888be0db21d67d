"""MLflow at team scale: `mlflow server` on a PostgreSQL backend store, serving (proxying) the
artifacts itself. The pipeline reaches it through MLFLOW_TRACKING_URI and nothing else: two queued
experiments land as two runs in PostgreSQL with their artifacts behind the server, and the model
registry (a version, an alias, a download by alias) works on it.

PostgreSQL is Debian's (`.ci/run` installs it), started by the test on 127.0.0.1 in its own data
directory (tools/postgres_server.py); without it the module is skipped, naming the reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TOOLS, ExperimentsRepo, clone_pipeline, run, run_queue, sandbox_env

sys.path.insert(0, str(TOOLS))  # the server helpers are tools, not part of the package

from mlflow_server import start_server  # noqa: E402
from postgres_server import start_postgres, unavailable_reason  # noqa: E402

NO_POSTGRES = unavailable_reason()
pytestmark = pytest.mark.skipif(NO_POSTGRES is not None, reason=str(NO_POSTGRES))

EXPERIMENT = "seqlab-binary_add"
LRS = {"pg-a": 0.015, "pg-b": 0.025}  # binary_add.train.lr of the two queued experiments
MODEL_NAME = "seqlab-binary_add-team"  # a name of its own: the evaluate stage may register under the task's name


@pytest.fixture(scope="module")
def postgres():
    server = start_postgres()
    try:
        server.create_database("mlflow")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres, tmp_path_factory):
    base = tmp_path_factory.mktemp("mlflow-pg")
    server = start_server(postgres.uri("mlflow"), artifacts_destination=base / "artifacts",
                          log_path=base / "mlflow-server.log", env=sandbox_env(base))
    try:
        yield server, base / "artifacts"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def team_repo(pipeline_template, mlflow_on_postgres, tmp_path_factory):
    """A clone of the template whose only link to the server is MLFLOW_TRACKING_URI; two queued experiments ran."""
    server, _ = mlflow_on_postgres
    base = tmp_path_factory.mktemp("team")
    root = clone_pipeline(pipeline_template, base / "repo")
    env = {**sandbox_env(base), "MLFLOW_TRACKING_URI": server.url}
    rev = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    repo = ExperimentsRepo(root, env, rev)
    try:
        for name, lr in LRS.items():
            repo.dvc("exp", "run", "--queue", "-S", f"binary_add.train.lr={lr}", "-n", name, "evaluate@binary_add")
        status = run_queue(repo)
        for name in LRS:
            assert re.search(rf"\b{name}\b.*\bSuccess\b", status), f"{status}\n{server.log_tail()}"
        yield repo
    finally:
        repo.dvc("queue", "stop", "--kill", check=False, timeout=120)


@pytest.fixture(scope="module")
def client(mlflow_on_postgres):
    from mlflow.tracking import MlflowClient

    server, _ = mlflow_on_postgres
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)  # explicit: no process-wide URI


def _runs(client, name: str) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"no experiment {EXPERIMENT} on the server"
    return client.search_runs([exp.experiment_id], f"tags.`dvc.exp_name` = '{name}'")


def test_queued_experiments_land_as_two_runs_in_postgres(team_repo, client, postgres, mlflow_on_postgres):
    import psycopg

    _, artifacts = mlflow_on_postgres
    for name, lr in LRS.items():
        runs = _runs(client, name)
        assert len(runs) == 1, f"{name}: {len(runs)} runs"
        run = runs[0]
        assert run.info.status == "FINISHED" and run.info.run_name == name
        assert float(run.data.params["train.lr"]) == lr
        assert run.data.tags["dvc.baseline_rev"] == team_repo.baseline_rev
        assert "final_val_loss" in run.data.metrics
        assert [k for k in run.data.metrics if k.startswith("test.") and k.endswith("exact_match")]  # evaluate's
        # Artifacts go through the server (mlflow-artifacts:/...) into its destination, not the repo.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        assert "history.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert len(list(artifacts.rglob("history.csv"))) == 2
    # Nothing fell back to the embedded store: no SQLite file, no local artifact folders in the repo.
    assert not [p for name in ("mlflow.db", "mlartifacts", "mlruns") for p in team_repo.root.rglob(name)]
    # The store is PostgreSQL itself: the two runs are rows of its `runs` table.
    with psycopg.connect(postgres.uri("mlflow")) as con:
        rows = con.execute("SELECT r.name FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
                           "WHERE e.name = %s AND r.lifecycle_stage = 'active'", (EXPERIMENT,)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(LRS)


def test_evaluate_registers_each_run_and_names_a_champion(team_repo, client):
    ids = {_runs(client, name)[0].info.run_id for name in LRS}
    versions = [v for run_id in ids for v in client.search_model_versions(f"run_id = '{run_id}'")
                if v.name != MODEL_NAME]
    assert sorted(v.run_id for v in versions) == sorted(ids), versions  # one version per evaluated run
    (name,) = {v.name for v in versions}
    assert client.get_model_version_by_alias(name, "champion").run_id in ids
    # predict finds the champion through MLFLOW_TRACKING_URI alone: registry, then the proxied artifacts
    proc = subprocess.run(["seqlab", "predict", "binary_add", "--model", f"models:/{name}@champion"],
                          input="1011 110\n", cwd=team_repo.root, env=team_repo.env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.fullmatch(r"[01]+", proc.stdout.strip()), proc.stdout  # an (untrained) sum, in binary


def test_registry_version_alias_and_download_on_the_server(team_repo, client, postgres, mlflow_on_postgres, tmp_path):
    import mlflow
    import psycopg

    from seqlab.core.checkpoint import MODEL_TAG, file_digest

    server, _ = mlflow_on_postgres
    run = _runs(client, "pg-b")[0]
    exp_id = run.info.experiment_id
    logged = client.search_logged_models([exp_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert len(logged) == 1, f"training logged {len(logged)} MLflow models for run {run.info.run_id}"
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME, f"models:/{logged[0].model_id}", run_id=run.info.run_id,
                                          model_id=logged[0].model_id)
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert (champion.version, champion.run_id, champion.status) == (version.version, run.info.run_id, "READY")
    # The champion's files come through the server's artifact proxy: the checkpoint that run trained.
    # (Through the client and the logged model's location, not a models:/ URI: that resolves through the
    # process-wide registry URI, which an earlier test in the same session may have set.)
    location = client.get_logged_model(logged[0].model_id).artifact_location
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path),
                                                     tracking_uri=server.url))
    checkpoints = [p for p in local.rglob("*.pt") if p.is_file()]
    assert [file_digest(p) for p in checkpoints] == [run.data.tags[MODEL_TAG]], checkpoints
    # Registry rows are in PostgreSQL too.
    with psycopg.connect(postgres.uri("mlflow")) as con:
        aliases = con.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s",
                              (MODEL_NAME,)).fetchall()
    assert aliases == [("champion", int(version.version))]
