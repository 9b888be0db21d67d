"""Tracking outage: MLFLOW_TRACKING_URI pointing at a server that is down fails training in < 10 s, clearly,
before any data is loaded; the embedded default store never touches the network.

Three outages: a closed port (connection refused), a server that accepts TCP but never answers (timeout), and
one that answers /health with HTTP 503. A healthy stub server is the control: with it the probe passes.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from reliability_support import clone_base, env_for, leftover_temps, one_error_line, run, tree_hashes

LIMIT_S = 10.0


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def _serve(status: int):
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def repo(pipeline_template, tmp_path_factory):
    return clone_base(pipeline_template, tmp_path_factory, "tracking")


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
    proc = run(list(command), repo, check=False, timeout=120, env=env_for(repo, MLFLOW_TRACKING_URI=uri))
    elapsed = time.monotonic() - t0
    return proc, elapsed, before


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_down_server_fails_fast_under_dvc(repo, silent_server):
    proc, elapsed, _ = _train_with(repo, silent_server, ("dvc", "repro", "-f", "-s", "train@kth"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"seqlab: error: MLflow tracking server {silent_server} is not reachable" in out
    assert elapsed < LIMIT_S + 3, f"took {elapsed:.1f}s"  # + DVC's own start-up
    run(["dvc", "checkout", "models/kth.pt"], repo)  # DVC removed the stage's outputs before the command


def test_healthy_server_passes_the_probe(monkeypatch):
    from seqlab.tracking import check_tracking_server

    server = _serve(200)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_address[1]}")
        check_tracking_server()  # no exception: the outage tests fail for the outage, not for any http URI
    finally:
        server.shutdown()


@pytest.mark.slow  # creates and migrates a SQLite MLflow store
def test_embedded_default_store_never_touches_the_network(monkeypatch, tmp_path):
    from seqlab import tracking

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


@pytest.mark.slow  # a second Python process that waits for the lock
def test_opening_a_new_store_waits_for_the_store_lock(tmp_path, monkeypatch):
    """Two stages creating the same SQLite store must not migrate it at once: the second waits for the lock."""
    import subprocess
    import sys

    from filelock import FileLock

    from seqlab.tracking import store_lock_path

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    script = ("import mlflow\nfrom seqlab import tracking\nprint('ready', flush=True)\n"
              "tracking.Tracker('seqlab-locked', run_name='after-lock').finish()\nprint('done', flush=True)\n")
    store_lock_path().parent.mkdir()
    with FileLock(store_lock_path()):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env_for(tmp_path, DVC_ROOT=str(tmp_path)),
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
