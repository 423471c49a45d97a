"""deploy/scripts under bad conditions: each failure stops with what is wrong and how to fix it.

The scripts run with a scratch TICKETFLOW_LOCAL_DIR and moved ports, so they never touch the
checkout's own broker or state; missing or broken tools are stand-in scripts first on PATH.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.infra import REPO_ROOT
from support.pg_cluster import PrivatePostgres

SCRIPTS = REPO_ROOT / "deploy" / "scripts"

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_script(name: str, local_dir: Path, env: dict[str, str], shims: Path | None = None) -> tuple[int, str]:
    full_env = {**os.environ, "TICKETFLOW_LOCAL_DIR": str(local_dir), **env}
    if shims is not None:
        full_env["PATH"] = f"{shims}:{full_env['PATH']}"
    result = subprocess.run(
        ["bash", str(SCRIPTS / name)],
        env=full_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=90,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def shim(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return directory


class _AnswersHttp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def not_kafka_port() -> Iterator[int]:
    """A port held by something that speaks HTTP, not Kafka or PostgreSQL."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AnswersHttp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def kafka_ports() -> dict[str, str]:
    return {"TICKETFLOW_KAFKA_PORT": str(free_port()), "TICKETFLOW_KAFKA_CONTROLLER_PORT": str(free_port())}


def test_kafka_up_refuses_a_port_held_by_something_that_is_not_kafka(tmp_path: Path, not_kafka_port: int) -> None:
    env = {**kafka_ports(), "TICKETFLOW_KAFKA_PORT": str(not_kafka_port)}
    code, output = run_script("kafka-up.sh", tmp_path, env)
    assert code == 1
    assert f"port {not_kafka_port} is taken by something that is not a Kafka broker" in output
    assert "fix:" in output


def test_kafka_up_names_a_java_that_is_too_old(tmp_path: Path) -> None:
    shims = shim(tmp_path / "bin", "java", 'echo "    java.specification.version = 11" >&2')
    code, output = run_script("kafka-up.sh", tmp_path / "local", kafka_ports(), shims)
    assert code == 1
    assert "Java '11'" in output and "needs 17 or newer" in output
    assert "apt-get install -y openjdk-17-jre-headless" in output


def test_kafka_up_reports_a_failed_download_and_keeps_mavens_log(tmp_path: Path) -> None:
    shims = shim(tmp_path / "bin", "mvn", 'echo "[ERROR] Could not transfer artifact: connect timed out"; exit 1')
    local_dir = tmp_path / "local"
    code, output = run_script("kafka-up.sh", local_dir, kafka_ports(), shims)
    assert code == 1
    assert "Maven could not download Kafka" in output
    assert "connect timed out" in (local_dir / "kafka" / "logs" / "maven.log").read_text()
    assert not list((local_dir / "kafka").glob("*/libs/.complete"))  # the next run tries again


@pytest.mark.kafka
def test_kafka_up_reuses_a_broker_it_did_not_start_and_down_leaves_it(tmp_path: Path, kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.split(",")[0].rpartition(":")
    assert host in {"127.0.0.1", "localhost"}, "the scripts only look at 127.0.0.1"
    env = {"TICKETFLOW_KAFKA_PORT": port, "TICKETFLOW_KAFKA_CONTROLLER_PORT": str(free_port())}
    code, output = run_script("kafka-up.sh", tmp_path, env)
    assert code == 0, output
    assert f"reusing the Kafka broker already on 127.0.0.1:{port}" in output
    code, output = run_script("kafka-down.sh", tmp_path, env)
    assert code == 0
    assert "not started by this checkout; nothing to stop" in output


def test_pg_up_refuses_a_port_held_by_something_it_cannot_set_up(tmp_path: Path, not_kafka_port: int) -> None:
    code, output = run_script("pg-up.sh", tmp_path, {"TICKETFLOW_PG_PORT": str(not_kafka_port)})
    assert code == 1
    assert f"port {not_kafka_port} answers" in output
    assert "fix:" in output


def test_status_says_unreachable_when_nothing_runs(tmp_path: Path) -> None:
    env = {**kafka_ports(), "TICKETFLOW_PG_PORT": str(free_port())}
    code, output = run_script("infra-status.sh", tmp_path, env)
    assert code == 0
    kafka_line, pg_line = output.splitlines()[:2]
    assert "unreachable" in kafka_line and "not started by this checkout" in kafka_line
    assert "unreachable" in pg_line


# Server settings (deploy/scripts/pg-settings.sh), on a private cluster: the shared one is never touched.

SETTINGS_DRIVER = """
set -euo pipefail
source "$SCRIPTS/lib.sh"
source "$SCRIPTS/pg-settings.sh"
superuser_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U postgres "$@"; }
restart_cluster() {
    [[ "$MAY_RESTART" == 1 ]] || return 1
    $AS_POSTGRES "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w restart -m fast >/dev/null
}
apply_pg_settings "$SETTINGS"
"""


def apply_settings(pg: PrivatePostgres, settings: Path, *, may_restart: bool) -> str:
    env = {
        **os.environ,
        "SCRIPTS": str(SCRIPTS),
        "SOCKET_DIR": str(pg.socket_dir),
        "PORT": str(pg.port),
        "BIN": str(pg.bin),
        "DATA": str(pg.data),
        "LOG": str(pg.log),
        "AS_POSTGRES": "runuser -u postgres --" if os.geteuid() == 0 else "",
        "MAY_RESTART": "1" if may_restart else "0",
        "SETTINGS": str(settings),
    }
    run = subprocess.run(["bash", "-c", SETTINGS_DRIVER], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def server(pg: PrivatePostgres, query: str) -> str:
    psql = ["psql", "-X", "-tA", "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "postgres", "-d", "postgres"]
    return subprocess.run([*psql, "-c", query], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_pg_settings_restart_the_cluster_once_for_a_changed_restart_only_setting(tmp_path: Path) -> None:
    """The project's settings.conf on a fresh cluster: applied, shared_buffers sized to this machine with
    one restart; a second run changes nothing and does not restart; a changed share restarts again."""
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal:")))  # fmt: skip
    with PrivatePostgres() as pg:
        started = server(pg, "SELECT pg_postmaster_start_time()")
        output = apply_settings(pg, REPO_ROOT / "deploy" / "postgres" / "settings.conf", may_restart=True)
        assert "restarted the cluster for restart-only settings (shared_buffers)" in output
        assert server(pg, "SELECT pg_postmaster_start_time()") != started
        assert server(pg, "SELECT setting::bigint * 8 FROM pg_settings WHERE name = 'shared_buffers'") == str(
            memory_kb // 4 // 1024 * 1024
        )  # 25%RAM in whole megabytes, as kB
        assert server(pg, "SHOW max_wal_size") == "16GB" and server(pg, "SHOW checkpoint_timeout") == "15min"
        started = server(pg, "SELECT pg_postmaster_start_time()")
        again = apply_settings(pg, REPO_ROOT / "deploy" / "postgres" / "settings.conf", may_restart=True)
        assert "changed" not in again and "restart" not in again
        assert server(pg, "SELECT pg_postmaster_start_time()") == started
        smaller = tmp_path / "settings.conf"
        smaller.write_text("shared_buffers = 10%RAM\nmax_wal_size = '16GB'\n")
        output = apply_settings(pg, smaller, may_restart=True)
        assert "settings changed: shared_buffers" in output and "restarted the cluster" in output
        assert server(pg, "SELECT setting::bigint * 8 FROM pg_settings WHERE name = 'shared_buffers'") == str(
            memory_kb // 10 // 1024 * 1024
        )


def test_pg_settings_leave_a_cluster_this_checkout_did_not_start_running_and_say_so(tmp_path: Path) -> None:
    """Without leave to restart, a restart-only setting is written and reloaded, but stays pending with a
    warning naming it; the server keeps running as it was. pg-up.sh itself, against a server it did not
    start (no state of its own), changes nothing at all."""
    with PrivatePostgres() as pg:
        started = server(pg, "SELECT pg_postmaster_start_time()")
        output = apply_settings(pg, REPO_ROOT / "deploy" / "postgres" / "settings.conf", may_restart=False)
        assert "restart-only settings are pending (shared_buffers)" in output and "restart it yourself" in output
        assert server(pg, "SELECT pg_postmaster_start_time()") == started
        assert server(pg, "SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'") == "t"
    with PrivatePostgres() as pg:
        server(pg, "CREATE ROLE ticketflow LOGIN CREATEDB PASSWORD 'ticketflow'")
        server(pg, "CREATE DATABASE ticketflow OWNER ticketflow")
        psql = ["psql", "-X", "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "postgres", "-d", "ticketflow"]
        subprocess.run([*psql, "-c", "CREATE EXTENSION pg_trgm"], check=True, capture_output=True, timeout=30)
        before = server(pg, "SELECT pg_postmaster_start_time(), current_setting('shared_buffers')")
        code, output = run_script("pg-up.sh", tmp_path / "local", {"TICKETFLOW_PG_PORT": str(pg.port)})
        assert code == 0, output
        assert "already serves database ticketflow" in output and "settings" not in output
        assert server(pg, "SELECT pg_postmaster_start_time(), current_setting('shared_buffers')") == before
        assert server(pg, "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'") == "0"
