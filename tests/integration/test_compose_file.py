"""docker-compose.yml cannot run here (no Docker engine), so it is checked as data.

The broker image must be the version pinned in deploy/kafka/pom.xml, and its settings must be the
local broker's, so the Docker path and the `make infra-up` path can never drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.infra import REPO_ROOT, pinned_kafka_version

SERVICE_PORTS = {
    "intake": 8001,
    "preflight": 8002,
    "routing": 8003,
    "sla": 8004,
    "notifications": 8005,
    "projector": 8006,
    "queries": 8007,
    "dashboard": 8008,
}
# server.properties keys whose values the compose broker must share (the listeners differ on purpose).
SHARED_BROKER_SETTINGS = [
    "process.roles",
    "node.id",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "min.insync.replicas",
    "default.replication.factor",
    "offsets.topic.num.partitions",
    "transaction.state.log.num.partitions",
    "group.initial.rebalance.delay.ms",
    "auto.create.topics.enable",
    "num.partitions",
]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def local_broker_settings() -> dict[str, str]:
    text = (REPO_ROOT / "deploy" / "kafka" / "server.properties.template").read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_infrastructure_and_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"init", "kafka", "postgres", *SERVICE_PORTS}


def test_kafka_image_is_the_version_pinned_in_the_pom(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{pinned_kafka_version()}"


def test_infrastructure_uses_the_same_ports_as_make_infra_up(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["ports"] == ["127.0.0.1:9092:9092"]
    assert compose["services"]["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert compose["services"]["postgres"]["image"] == "postgres:15"


def test_compose_broker_settings_match_the_local_broker(compose: dict[str, Any]) -> None:
    environment = compose["services"]["kafka"]["environment"]
    local = local_broker_settings()
    for key in SHARED_BROKER_SETTINGS:
        env_name = "KAFKA_" + key.upper().replace(".", "_")
        assert str(environment[env_name]) == local[key], key


@pytest.mark.parametrize(("name", "port"), sorted(SERVICE_PORTS.items()))
def test_each_service_runs_its_module_from_the_project_image(compose: dict[str, Any], name: str, port: int) -> None:
    service = compose["services"][name]
    assert service["command"] == ["python", "-m", f"ticketflow.{name}"]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert Path(REPO_ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    environment = service["environment"]
    assert environment["TICKETFLOW_KAFKA_BOOTSTRAP"] == "kafka:19092"
    assert environment["TICKETFLOW_PG_DSN"].endswith("@postgres:5432/ticketflow")
    assert environment["TICKETFLOW_HTTP_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/health/ready" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
    # The module must exist in the workspace (services/<name>/src/ticketflow/<name>/).
    assert (REPO_ROOT / "services" / name / "src" / "ticketflow" / name).is_dir()


def test_services_start_after_migrations_and_topics_on_healthy_infrastructure(compose: dict[str, Any]) -> None:
    init = compose["services"]["init"]
    assert init["command"][-1] == "python -m ticketflow.eventstore.migrate && ticketflow topics create"
    assert init["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    for module in ("eventstore/src/ticketflow/eventstore/migrate.py", "messaging/src/ticketflow/messaging/topics.py"):
        assert (REPO_ROOT / "libs" / module).is_file(), module


def test_service_ports_agree_with_the_runtime_settings() -> None:
    from ticketflow.runtime.settings import SERVICE_PORTS as RUNTIME_PORTS

    assert RUNTIME_PORTS == SERVICE_PORTS


def test_image_installs_exactly_the_locked_dependencies_with_uv() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert "uv sync --frozen --no-dev --all-packages" in dockerfile


def test_compose_postgres_runs_with_the_settings_pg_up_applies(compose: dict[str, Any]) -> None:
    """deploy/postgres/settings.conf is applied by pg-up.sh (ALTER SYSTEM) and by compose (`-c` flags);
    a share of the machine's memory (NN%RAM, resolved by pg-settings.sh) is a fixed size in compose."""
    settings = {}
    for line in (REPO_ROOT / "deploy" / "postgres" / "settings.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            settings[name.strip()] = value.strip().strip("'")
    assert settings, "settings.conf lists no setting"
    command = compose["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    flags = dict(flag.split("=", 1) for flag in command[2::2])
    assert command[1::2] == ["-c"] * len(flags)
    assert flags.keys() == settings.keys()
    for name, value in settings.items():
        if value.endswith("%RAM"):
            assert re.fullmatch(r"\d+(MB|GB)", flags[name]), f"compose needs a fixed size for {name}"
        else:
            assert flags[name] == value
