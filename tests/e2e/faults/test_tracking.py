"""Tracking outage: MLFLOW_TRACKING_URI pointing at a server that is down fails training in < 10 s, clearly,
before any data is loaded; the embedded default store never touches the network.

Three outages: a closed port (connection refused), a server that accepts TCP but never answers (timeout), and
one that answers /health with HTTP 503. A healthy stub server is the control: with it the probe passes.
And a real server that dies in the middle of training: one line naming it, and the rerun resumes the run.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from tests.support import (
    REPO,
    SANDBOX,
    clone_pipeline,
    leftover_temps,
    one_error_line,
    run,
    sandbox_env,
    tiny_params,
    tree_hashes,
)

sys.path.insert(0, str(REPO / "tools"))  # the light MLflow server helper
from mlflow_server import api, free_port, group_members, start_server  # noqa: E402

LIMIT_S = 10.0


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str]  # the paths asked for, in order (each _serve's handler class has its own list)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.paths.append(self.path)
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def _serve(status: int):
    handler = type("Handler", (_Health,), {"status": status, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory):
    return clone_pipeline(pipeline_template, tmp_path_factory.mktemp("tracking") / "repo")


@pytest.fixture
def silent_server():
    """Listens (the kernel completes the TCP handshake) but never accepts or answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _train_with(repo, uri, command=("seqlab", "train", "kth")):
    before = tree_hashes(repo, "models", "metrics", "data")
    t0 = time.monotonic()
    proc = run(list(command), repo, check=False, timeout=120, env=sandbox_env(repo / SANDBOX, MLFLOW_TRACKING_URI=uri))
    elapsed = time.monotonic() - t0
    return proc, elapsed, before


@pytest.mark.parametrize("outage", ["refused", "silent", "http-503"])
def test_down_server_fails_fast_and_clearly(repo, silent_server, outage):
    server = None
    if outage == "refused":
        uri, fragment = f"http://127.0.0.1:{_closed_port()}", "Connection refused"
    elif outage == "silent":
        uri, fragment = silent_server, "timed out"
    else:
        server = _serve(503)
        uri, fragment = f"http://127.0.0.1:{server.server_address[1]}", "unhealthy (HTTP 503"
    try:
        proc, elapsed, before = _train_with(repo, uri)
    finally:
        if server:
            server.shutdown()
    line = one_error_line(proc)
    assert uri in line and fragment in line and "MLFLOW_TRACKING_URI" in line, line
    assert elapsed < LIMIT_S, f"took {elapsed:.1f}s"
    assert "epoch" not in proc.stderr  # no training happened
    assert tree_hashes(repo, "models", "metrics", "data") == before
    assert not (repo / "mlflow.db").exists() and not list((repo / ".seqlab").glob("resume/*"))
    assert leftover_temps(repo) == []


def test_down_server_fails_fast_under_dvc(repo, silent_server):
    proc, elapsed, _ = _train_with(repo, silent_server, ("dvc", "repro", "-f", "-s", "train@kth"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"seqlab: error: MLflow tracking server {silent_server} is not reachable" in out
    assert elapsed < LIMIT_S + 3, f"took {elapsed:.1f}s"  # + DVC's own start-up
    run(["dvc", "checkout", "models/kth.pt"], repo)  # DVC removed the stage's outputs before the command


def test_healthy_server_passes_the_probe(monkeypatch):
    from seqlab.tracking.runs import check_tracking_server

    server = _serve(200)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_address[1]}")
        # No exception, after a real probe: the outage tests fail for the outage, not for any http URI.
        assert check_tracking_server() is None
        assert server.RequestHandlerClass.paths == ["/health"]
    finally:
        server.shutdown()


def test_embedded_default_store_never_touches_the_network(monkeypatch, tmp_path):
    from seqlab.tracking import runs as tracking

    def no_network(*args, **kwargs):
        raise AssertionError("the default store must not open a connection")

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(tracking.urllib.request, "urlopen", no_network)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.check_tracking_server()
    run_id = tracking.Tracker("seqlab-offline", run_name="offline").run_id  # a real run in the local store
    assert run_id and (tmp_path / "mlflow.db").exists()


def test_opening_a_new_store_waits_for_the_store_lock(tmp_path, monkeypatch):
    """Two stages creating the same SQLite store must not migrate it at once: the second waits for the lock."""
    import subprocess
    import sys

    from filelock import FileLock

    from seqlab.tracking.runs import store_lock_path

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    script = ("import mlflow\nfrom seqlab.tracking import runs as tracking\nprint('ready', flush=True)\n"
              "tracking.Tracker('seqlab-locked', run_name='after-lock').finish()\nprint('done', flush=True)\n")
    store_lock_path().parent.mkdir()
    with FileLock(store_lock_path()):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=sandbox_env(tmp_path / SANDBOX, DVC_ROOT=str(tmp_path)),
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(3)  # without the lock it would now be creating and migrating mlflow.db
            assert proc.poll() is None and not (tmp_path / "mlflow.db").exists()
        except BaseException:
            proc.kill()
            raise
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "done" in out, out
    assert (tmp_path / "mlflow.db").exists()


# --- a real server that dies mid-training ---------------------------------------------------------------

EPOCHS = 40  # long enough that the server is gone well before the last epoch (tiny kth: ~0.1 s an epoch)
EVENT_TIMEOUT_S = 300.0


def _wait_for(condition, what: str, proc: subprocess.Popen) -> None:
    """Poll `condition` until it holds; fail if `proc` ended first or after EVENT_TIMEOUT_S."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training ended ({proc.returncode}) before {what}:\n{proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"no {what} after {EVENT_TIMEOUT_S:.0f} s"
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    """SIGKILL: the server dies, it is not shut down. Wait (bounded) until none of its processes is left."""
    os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_server_dying_mid_training_fails_in_one_line_and_the_rerun_resumes(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    params = tiny_params()
    params["kth"]["train"].update(epochs=EPOCHS, patience=EPOCHS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["seqlab", "generate", "kth"], root, env=sandbox_env(root / SANDBOX, DVC_ROOT=str(root)))
    store, artifacts, port = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts", free_port()
    server_env = sandbox_env(tmp_path / SANDBOX)
    server = start_server(store, artifacts_destination=artifacts, port=port, env=server_env)
    env = sandbox_env(root / SANDBOX, DVC_ROOT=str(root), MLFLOW_TRACKING_URI=server.url)
    resume_dir = root / ".seqlab" / "resume"
    try:
        proc = subprocess.Popen(["seqlab", "train", "kth"], cwd=root, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: any(resume_dir.glob("kth-*.pt")), "first epoch's checkpoint", proc)
            _kill_group(server.pgid)
            out, err = proc.communicate(timeout=EVENT_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        failed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert failed.returncode == 1 and "Traceback" not in out + err, err[-3000:]
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        assert errors == [err.strip().splitlines()[-1]], err[-3000:]  # one error line, the last one
        # Refused or lost: whether the kill lands between requests or during one depends on the machine's load.
        assert errors[0] in [f"seqlab: error: MLflow tracking server {server.url} stopped answering (connection "
                             f"{how}); start it again, then rerun: training resumes after its last finished epoch"
                             for how in ("refused", "lost")], errors
        assert not (root / "models" / "kth.pt").exists() and len(list(resume_dir.glob("kth-*.pt"))) == 1
        done = max(int(line.split("epoch ")[1].split(":")[0]) for line in err.splitlines() if "] epoch " in line)
        assert done < EPOCHS

        server.stop()  # reaps the killed leader
        server = start_server(store, artifacts_destination=artifacts, port=port, env=server_env)  # the same URI
        rerun = run(["seqlab", "train", "kth"], root, env=env, timeout=EVENT_TIMEOUT_S)
        assert "[kth] resuming after epoch " in rerun.stderr
        assert (root / "models" / "kth.pt").exists() and not list(resume_dir.glob("kth-*.pt"))
        exp = api(server.url, "experiments/get-by-name?experiment_name=seqlab-kth")["experiment"]
        runs = api(server.url, "runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        assert [r["info"]["status"] for r in runs] == ["FINISHED"]  # the interrupted run, resumed and finished
        history = api(server.url, f"metrics/get-history?run_id={runs[0]['info']['run_id']}&metric_key=train_loss")
        # every epoch logged: before the outage, then from the resume on (a step whose request was in flight
        # when the server died may be there twice)
        assert sorted({m["step"] for m in history["metrics"]}) == list(range(1, EPOCHS + 1))
    finally:
        server.stop()


def test_evaluate_takes_the_run_id_the_train_stage_left(tmp_path, monkeypatch):
    """The id train left is used when it is for this model file and in this store; otherwise the digest search."""
    import seqlab.tracking.runs as tracking

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))

    class Store:
        def get_run(self, run_id: str) -> None:
            if run_id != "r1":
                raise LookupError(run_id)  # what a client raises for a run of another store

    monkeypatch.setattr(tracking, "_client", Store)
    monkeypatch.setattr(tracking, "find_run", lambda experiment, tag, value: f"searched:{value}")
    assert tracking.training_run("seqlab-kth", "kth", "tag", "d1") == "searched:d1"  # nothing left
    tracking.remember_training_run("kth", "d1", "r1")
    assert tracking.training_run("seqlab-kth", "kth", "tag", "d1") == "r1"
    assert tracking.training_run("seqlab-kth", "kth", "tag", "d2") == "searched:d2"  # another model file
    tracking.remember_training_run("kth", "d1", "r9")
    assert tracking.training_run("seqlab-kth", "kth", "tag", "d1") == "searched:d1"  # not in this store
    tracking.training_run_file("kth").write_text("{")
    assert tracking.training_run("seqlab-kth", "kth", "tag", "d1") == "searched:d1"  # damaged
