"""A private PostgreSQL cluster for tests that stop, restart or reconfigure the server (the shared one is
never touched): Debian's binaries (`/usr/lib/postgresql/<newest>/bin`: initdb, pg_ctl), a data
directory in a fresh temporary directory, a free port on 127.0.0.1, trust authentication (loopback and
its own socket only). Run as root, the server runs as the `postgres` user (PostgreSQL refuses root).

    with PrivatePostgres() as pg:
        dsn = pg.dsn()                    # postgresql://postgres@127.0.0.1:<port>/postgres
        pg.restart()                      # pg_ctl restart (fast shutdown), waits until it accepts connections
        pg.stop(); pg.start()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

POSTGRES_BINARIES = Path("/usr/lib/postgresql")


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    versions = sorted(
        (p for p in POSTGRES_BINARIES.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name)
    )
    if not versions:
        raise RuntimeError(f"no PostgreSQL binaries under {POSTGRES_BINARIES}: apt-get install postgresql")
    return versions[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """`settings`: extra postgresql.conf lines (name -> value as written in the file)."""
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tf-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._settings = settings or {}
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def socket_dir(self) -> Path:
        return self.root

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        lines = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            **self._settings,
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in lines.items())
        return self

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args)

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """`mode`: fast (sessions ended, a clean shutdown) or immediate (as a crash)."""
        self.pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast")

    def __enter__(self) -> PrivatePostgres:
        self.init().start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
