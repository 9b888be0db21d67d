"""Start and stop a throwaway PostgreSQL cluster on 127.0.0.1 (the MLflow-on-PostgreSQL test and demos).

Uses the server binaries of Debian's `postgresql` package (`/usr/lib/postgresql/<ver>/bin`, the
newest version found, or `initdb` on PATH). PostgreSQL refuses to run as root, so as root the
cluster belongs to the `postgres` system user that package creates: its data directory is chowned
to that user and every server command runs as it; as any other user it runs as that user. The
cluster listens on TCP only (no Unix socket: Debian's default socket directory needs root),
authenticates with a password (scram-sha-256), and is deleted by `stop()`.
Unix only (process users).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_server import free_port

SERVICE_USER = "postgres"  # the system user Debian's postgresql package creates


def find_bindir() -> Path | None:
    """The directory holding initdb/pg_ctl/createdb: the newest Debian install, else initdb on PATH."""
    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.parent.name.split(".") if x.isdigit())

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (for a test's skip message), or None when it can."""
    if find_bindir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no '{SERVICE_USER}' user to run PostgreSQL as"
    return None


@dataclass
class PostgresServer:
    """A running cluster; `uri(db)` is the SQLAlchemy URI MLflow takes as `--backend-store-uri`."""

    bindir: Path
    base: Path  # holds data/ and server.log; deleted by stop()
    port: int
    user: str
    password: str
    run_as: str | None  # the OS user server commands run as (None: this process's user)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        """Run a PostgreSQL tool of this install as the cluster's OS user, against this cluster."""
        env = {**os.environ, "PGPASSWORD": self.password, "PGHOST": "127.0.0.1", "PGPORT": str(self.port),
               "PGUSER": self.user}
        proc = subprocess.run([str(self.bindir / tool), *args], env=env, user=self.run_as, cwd=self.base,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                               f"\n{self.log_tail()}")
        return proc

    def create_database(self, name: str) -> None:
        self.run("createdb", name)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (disconnects clients), then delete the cluster."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start_postgres(user: str = "mlflow", password: str = "mlflow-test") -> PostgresServer:
    """initdb a new cluster in a temp directory and start it on a free 127.0.0.1 port (waits until ready)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    run_as = SERVICE_USER if os.geteuid() == 0 else None
    # mkdtemp makes a 0700 directory under the system temp dir (world-traversable /tmp), so the
    # service user can reach it once it owns it; a pytest tmp_path under root's 0700 dir could not.
    base = Path(tempfile.mkdtemp(prefix="seqlab-pg-"))
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir, base, free_port(), user, password, run_as)
    try:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        server.run("initdb", "-D", str(server.data_dir), "-U", user, "--pwfile", str(pwfile),
                   "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories=''"
        server.run("pg_ctl", "start", "-D", str(server.data_dir), "-l", str(server.log_path), "-w", "-t", "60",
                   "-o", options)
    except BaseException:
        server.stop()
        raise
    return server
