"""A PostgreSQL cluster of a test's own, for tests that stop and start the database (outages, chaos).

The shared server on 127.0.0.1:5432 serves everybody's tests and must never be stopped; this one is made
with the machine's PostgreSQL binaries (Debian: /usr/lib/postgresql/<version>/bin; or
TICKETFLOW_PG_BIN), in a temporary directory, on a free port:

    cluster = PrivatePostgres.create()   # initdb, started, database `ticketflow` with pg_trgm
    cluster.dsn                          # postgresql://ticketflow:ticketflow@127.0.0.1:<port>/ticketflow
    cluster.stop()                       # "fast": every session is ended (clients see the server go away)
    cluster.stop(mode="immediate")       # as a crash: no checkpoint, recovery at the next start
    cluster.start()                      # again, on the same port and data directory
    cluster.destroy()                    # stopped and removed

Run as root (as in the development container), the binaries run as the `postgres` user: initdb refuses
root. Durability settings are off (fsync, synchronous_commit, full_page_writes): a stop of the server,
even "immediate", loses nothing the operating system already has; only a power cut would.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from support.infra import InfraUnavailableError

ROLE = "ticketflow"
DATABASE = "ticketflow"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "'64MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "'1GB'",
    "log_min_messages": "warning",
}
StopMode = Literal["smart", "fast", "immediate"]


def postgres_binaries() -> Path:
    """The directory with initdb and pg_ctl: TICKETFLOW_PG_BIN, else the newest Debian installation."""
    chosen = os.environ.get("TICKETFLOW_PG_BIN", "").strip()
    candidates = [Path(chosen)] if chosen else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )  # fmt: skip
    for directory in reversed(candidates):
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise InfraUnavailableError(
        "no PostgreSQL binaries (initdb, pg_ctl) for a private cluster: apt-get install postgresql, "
        "or set TICKETFLOW_PG_BIN to their directory"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivatePostgres:
    """One private cluster: its directory, port and binaries. `create()` makes and starts one."""

    root: Path  # data/, server.log and the socket live here
    port: int
    binaries: Path

    @classmethod
    def create(cls, port: int | None = None) -> PrivatePostgres:
        binaries = postgres_binaries()
        root = Path(tempfile.mkdtemp(prefix="tf-private-pg-"))
        cluster = cls(root, port or free_port(), binaries)
        try:
            cluster._initdb()
            cluster.start()
            cluster._create_database()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for(DATABASE)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{ROLE}:{ROLE}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def start(self) -> None:
        """Start (again) on the same port and data directory; returns once it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "120", "start")

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server; `fast` ends every session, `immediate` stops like a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    @property
    def running(self) -> bool:
        status = subprocess.run(self._command("pg_ctl", "-D", str(self.data), "status"), capture_output=True,
                                check=False)  # fmt: skip
        return status.returncode == 0

    def destroy(self) -> None:
        """Stop it (if it runs) and remove its directory."""
        with contextlib.suppress(InfraUnavailableError):
            if self.data.exists() and self.running:
                self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def _initdb(self) -> None:
        self.data.mkdir()
        owner = _owner()
        if owner is not None:
            for path in (self.root, self.data):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.root}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/private_postgres.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _create_database(self) -> None:
        psql = ("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE)
        self._run(*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}")
        self._run(*psql, "-d", DATABASE, "-c", "CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.binaries / program), *args]
        owner = _owner()
        return ["runuser", "-u", owner.pw_name, "--", *command] if owner is not None else command

    def _run(self, program: str, *args: str) -> None:
        # From the cluster's own directory: the postgres user may not enter the caller's working directory.
        result = subprocess.run(self._command(program, *args), cwd=self.root, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        if result.returncode != 0:
            raise InfraUnavailableError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"server log:\n{self.server_log()}"
            )


def _owner() -> pwd.struct_passwd | None:
    """The user the binaries run as: `postgres` when we are root (initdb refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise InfraUnavailableError("running as root needs a `postgres` user for a private cluster") from None


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private cluster for the duration of the block (a fixture's body)."""
    cluster = PrivatePostgres.create()
    try:
        yield cluster
    finally:
        cluster.destroy()
