"""Start and stop a light, local MLflow tracking server (for screenshots, tests and REST checks).

`mlflow server` with defaults takes ~22 s and ~2.5 GB (job-execution consumers, several workers);
with job execution disabled and one worker it is ready in ~6 s at ~0.5 GB. It is bound to
127.0.0.1 on a free port, runs in its own process group, and `stop()` SIGTERMs that group and
waits until no live process is left in it (huey/uvicorn children can outlive the leader).
Unix only (process groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _mlflow_command() -> list[str]:
    # Prefer the console script of this interpreter's environment, so a venv's mlflow is used
    # even when that venv is not on PATH.
    exe = Path(sys.executable).with_name("mlflow")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mlflow")
    return [found] if found else [sys.executable, "-m", "mlflow"]


def group_members(pgid: int) -> list[psutil.Process]:
    """The live processes of process group `pgid`.

    Zombies do not count: orphans re-parented to a PID 1 that never reaps (common in containers)
    would otherwise keep the group "alive" forever.
    """
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):  # exited while we looked
            continue
    return members


@dataclass
class MlflowServer:
    """A running `mlflow server`; `url` is its base URL (no trailing slash)."""

    process: subprocess.Popen
    url: str
    log_path: Path
    delete_log: bool = False  # True when start_server made the log file itself
    _closed: bool = field(default=False, repr=False)

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session=True makes the leader its group's id

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the whole process group, wait for it to empty, SIGKILL what is left after `timeout`."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        while group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
            end = time.monotonic() + 10
            while group_members(self.pgid) and time.monotonic() < end:
                time.sleep(0.1)
        if self.delete_log:
            self.log_path.unlink(missing_ok=True)


def api(base_url: str, path: str, payload: dict | None = None, *, timeout: float = 30) -> dict:
    """Call the MLflow REST API (`path` like "runs/search"): POST JSON when `payload` is given, else GET."""
    url = f"{base_url}/api/2.0/mlflow/{path}"
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:  # MLflow explains 4xx errors in the body; keep that
        raise RuntimeError(f"{req.method} {url} -> HTTP {exc.code}: {exc.read()[:500]!r}") from None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(backend_store_uri: str, *, artifacts_destination: Path | None = None, host: str = "127.0.0.1",
                 port: int | None = None, log_path: Path | None = None, extra_allowed_hosts: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None, ready_timeout: float = READY_TIMEOUT_S) -> MlflowServer:
    """Start `mlflow server` on `host:port` against `backend_store_uri` and wait until /health answers.

    `extra_allowed_hosts` adds names (e.g. an alias a browser maps to 127.0.0.1) to the server's
    Host-header allow-list and, for the UI's own POSTs from that origin, to its CORS origins; the
    loopback names stay allowed. The server still listens on `host` only. `env` replaces the
    inherited environment (e.g. a sandboxed HOME in tests).
    """
    port = port or free_port(host)
    delete_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="mlflow-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    cmd = [*_mlflow_command(), "server", "--backend-store-uri", backend_store_uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    if artifacts_destination is not None:
        cmd += ["--artifacts-destination", str(artifacts_destination)]
    env = {**(os.environ if env is None else env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    if extra_allowed_hosts:
        names = ("localhost", "127.0.0.1", *extra_allowed_hosts)
        cmd += ["--allowed-hosts", ",".join([*names, *(f"{n}:*" for n in names)]),
                "--cors-allowed-origins", ",".join(f"http://{n}:{port}" for n in extra_allowed_hosts)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    server = MlflowServer(process, f"http://{host}:{port}", log_path, delete_log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
        if _healthy(server.url):
            return server
        time.sleep(0.5)
    tail = server.log_tail()
    server.stop()
    raise TimeoutError(f"mlflow server not ready after {ready_timeout:.0f}s:\n{tail}")


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, **kwargs: object) -> Iterator[MlflowServer]:
    """`with mlflow_server("sqlite:///…/mlflow.db") as srv: ...`; the server is stopped on exit."""
    server = start_server(backend_store_uri, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
