"""deploy/k8s/base, validated offline: what the code renders now (`make k8s`), every Kubernetes object valid
for Kubernetes 1.33 (kubernetes-validate's bundled schemas, strict), the Strimzi objects valid for the
vendored subset of their schema, and what the deployment promises: probes, resource requests, secrets only
from Secrets, no topic created by a service, a KafkaTopic per declared topic with 3 replicas and
min.insync.replicas 2, the desks as a ConfigMap that loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate
import pytest
import yaml

from ticketflow.cli import k8s
from ticketflow.deskconfig import PACKAGED_DESKS, load_desks
from ticketflow.messaging.topics import TOPICS
from ticketflow.runtime.configdoc import discover
from ticketflow.runtime.settings import SERVICE_PORTS, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
KUBERNETES = "1.33.0"
NOTIFICATIONS_CONFIG = ROOT / "services/notifications/src/ticketflow/notifications/config/local.toml"
RENDERED = k8s.render()
OBJECTS = [doc for name in RENDERED if name != "secret.example.yaml" for doc in yaml.safe_load_all(RENDERED[name])]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in OBJECTS if o["kind"] == kind]


def test_the_committed_manifests_are_what_the_code_renders_now() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in BASE.glob("*.yaml")}
    assert committed == RENDERED, "deploy/k8s/base is stale: run `make k8s`"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_every_kubernetes_object_is_valid_offline(name: str) -> None:
    strimzi = jsonschema_rs.validator_for(
        json.loads((ROOT / "tests/schemas/strimzi-v1beta2-subset.schema.json").read_text())
    )
    for doc in yaml.safe_load_all(RENDERED[name]):
        if doc["apiVersion"].startswith("kafka.strimzi.io/"):
            assert [e.message for e in strimzi.iter_errors(doc)] == [], doc["metadata"]["name"]
        elif doc["kind"] != "Kustomization":
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    [kustomization] = yaml.safe_load_all(RENDERED["kustomization.yaml"])
    assert sorted(kustomization["resources"]) == sorted(set(RENDERED) - {"kustomization.yaml", "secret.example.yaml"})


def test_every_service_has_probes_requests_and_secrets_from_secrets() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert set(deployments) == set(SERVICE_PORTS)
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"ticketflow.{name}"]
        assert container["ports"] == [{"name": "http", "containerPort": SERVICE_PORTS[name]}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert {"secretRef": {"name": "ticketflow-secrets"}} in container["envFrom"]
        for env in container["env"]:
            secret_like = any(word in env["name"] for word in ("PASSWORD", "SECRET", "TOKEN", "DSN"))
            assert not (secret_like and "value" in env), f"{name}: {env['name']} is written in the manifest"
        assert services[name]["spec"]["ports"][0]["port"] == SERVICE_PORTS[name]
    [job] = of_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "ticketflow.eventstore.migrate",
    ]


def known_variables() -> set[str]:
    classes: list[type[ServiceSettings]] = [ServiceSettings, *discover()]
    return {cls.variable(f) for cls in classes for f in cls.model_fields}


def test_every_variable_the_manifests_set_is_a_setting_or_a_secret_the_desks_name() -> None:
    [config] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "ticketflow-config"]
    assert config["data"]["TICKETFLOW_ENSURE_TOPICS"] == "false"  # Strimzi's topic operator makes the topics
    assert config["data"]["TICKETFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    named = {e["name"] for d in of_kind("Deployment") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(config["data"]) | named <= known_variables()
    # The secrets the packaged desks and notifications' packaged channel accounts name by variable.
    files = [*PACKAGED_DESKS.glob("*.toml"), NOTIFICATIONS_CONFIG]
    named_secrets = {line.split("=")[1].strip().strip('"') for p in files for line in p.read_text().splitlines()
                     if line.split("=")[0].strip().endswith("_env")}  # fmt: skip
    assert set(k8s.SECRET_KEYS) == named_secrets | {"TICKETFLOW_PG_DSN"}


def test_topics_are_strimzi_topics_with_three_replicas_and_two_in_sync() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind("KafkaTopic")}
    assert set(topics) == {t.name for t in TOPICS}
    for declared in TOPICS:
        spec = topics[declared.name]
        assert (spec["partitions"], spec["replicas"], spec["config"]["min.insync.replicas"]) == (
            declared.partitions, 3, 2
        )  # fmt: skip
        assert spec["config"]["retention.ms"] == declared.retention_ms
    [user] = of_kind("KafkaUser")
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"


def test_the_desks_config_map_holds_the_packaged_desks_and_loads(tmp_path: Path) -> None:
    [desks] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "ticketflow-desks"]
    for name, text in desks["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert sorted(load_desks(tmp_path).desks) == sorted(load_desks(PACKAGED_DESKS).desks)
