"""`make k8s`: the Kubernetes manifests of deploy/k8s/base (kustomize), rendered from the code so they
cannot drift from it: a Deployment and a Service per service (ports from `SERVICE_PORTS`), the migration
Job, the desk files as a ConfigMap (the packaged desks), the topics as Strimzi `KafkaTopic`s from the topic
declarations (replication factor 3, `min.insync.replicas` 2), and a Strimzi `KafkaUser` (SCRAM-SHA-512)
every Kafka client authenticates as, over TLS. A test fails when the committed files differ from this.

Production settings: services create no topics (TICKETFLOW_ENSURE_TOPICS=false: Strimzi's topic operator
does), listen on 0.0.0.0, read the desks from the ConfigMap, and take every secret from Secrets: the
`ticketflow-secrets` Secret (the database DSN, the chat platforms' secrets; see secret.example.yaml) and the
`ticketflow` Secret the user operator makes for the KafkaUser (its `password`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from ticketflow.deskconfig import PACKAGED_DESKS
from ticketflow.messaging.topics import TOPICS
from ticketflow.runtime.settings import SERVICE_PORTS

IMAGE = "ticketflow:0.1.0"  # deploy/docker/Dockerfile; an overlay sets the registry and tag (kustomize `images`)
CLUSTER = "ticketflow"  # the Strimzi Kafka cluster's name
KAFKA_USER = "ticketflow"
REPLICAS, MIN_IN_SYNC = 3, 2
DESKS_DIR, CA_DIR = "/etc/ticketflow/desks", "/etc/ticketflow/kafka-ca"
LABELS = {"app.kubernetes.io/part-of": "ticketflow"}
# Replicas and resources per service (docs/operations.md "Scaling" says why each can or cannot scale out).
SIZES: dict[str, tuple[int, str, str, str]] = {  # replicas, cpu request, memory request, memory limit
    "intake": (2, "250m", "256Mi", "512Mi"),
    "preflight": (2, "100m", "256Mi", "512Mi"),
    "routing": (2, "250m", "512Mi", "1Gi"),  # one leads, one stands by
    "sla": (2, "250m", "512Mi", "2Gi"),  # timers of its partitions live in memory
    "notifications": (2, "100m", "256Mi", "512Mi"),
    "projector": (2, "100m", "256Mi", "512Mi"),  # one relays (the relay lock), both project
    "queries": (2, "250m", "256Mi", "512Mi"),  # reads only: any number serve side by side
    "dashboard": (2, "100m", "256Mi", "512Mi"),  # holds no state: sessions are the visitors' tokens
}
COMMON_ENV = {
    "TICKETFLOW_KAFKA_BOOTSTRAP": f"{CLUSTER}-kafka-bootstrap:9093",
    "TICKETFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "TICKETFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "TICKETFLOW_KAFKA_SASL_USERNAME": KAFKA_USER,
    "TICKETFLOW_KAFKA_SSL_CA_FILE": f"{CA_DIR}/ca.crt",
    "TICKETFLOW_ENSURE_TOPICS": "false",
    "TICKETFLOW_HTTP_HOST": "0.0.0.0",
    "TICKETFLOW_LOG_LEVEL": "INFO",
    "TICKETFLOW_DESK_CONFIG_DIR": DESKS_DIR,
    "TICKETFLOW_DASHBOARD_QUERIES_URL": f"http://queries:{SERVICE_PORTS['queries']}",  # the queries Service
}
SECRET_KEYS = ("TICKETFLOW_PG_DSN", "TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET", "TICKETFLOW_EXPRESS_ACME_BOT_SECRET",
               "TICKETFLOW_B24_BOX_CLIENT_SECRET")  # fmt: skip


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "labels": {**LABELS, **labels}}


def _kafka_client_env() -> list[dict[str, Any]]:
    password = {"secretKeyRef": {"name": KAFKA_USER, "key": "password"}}
    return [{"name": "TICKETFLOW_KAFKA_SASL_PASSWORD", "valueFrom": password}]


def _env_from() -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": "ticketflow-config"}}, {"secretRef": {"name": "ticketflow-secrets"}}]


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "desks", "configMap": {"name": "ticketflow-desks"}},
        {"name": "kafka-ca", "secret": {"secretName": f"{CLUSTER}-cluster-ca-cert", "items": [
            {"key": "ca.crt", "path": "ca.crt"}]}},
    ]  # fmt: skip


def _mounts() -> list[dict[str, Any]]:
    return [{"name": "desks", "mountPath": DESKS_DIR, "readOnly": True},
            {"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True}]  # fmt: skip


def _security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}  # fmt: skip


def deployment(service: str) -> dict[str, Any]:
    replicas, cpu, memory, memory_limit = SIZES[service]
    port = SERVICE_PORTS[service]
    probe = {"httpGet": {"path": "/health/live", "port": "http"}}
    container = {
        "name": service,
        "image": IMAGE,
        "command": ["python", "-m", f"ticketflow.{service}"],
        "ports": [{"name": "http", "containerPort": port}],
        "env": [{"name": f"TICKETFLOW_{service.upper()}_PORT", "value": str(port)}, *_kafka_client_env()],
        "envFrom": _env_from(),
        "volumeMounts": _mounts(),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        # Start-up work (restoring state, leading, catching up) ends before the first request is served:
        # the startup probe gives it five minutes, then liveness takes over.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {**probe, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        # Not ready: the broker or the database unreachable, a consumer waiting on an outage, a task down.
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 10,
                           "timeoutSeconds": 5, "failureThreshold": 3},
        "securityContext": _security(),
    }  # fmt: skip
    selector = {"app.kubernetes.io/name": service}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(service, **selector),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**LABELS, **selector}},
                "spec": {"containers": [container], "volumes": _volumes(), "terminationGracePeriodSeconds": 60},
            },
        },
    }


def service_object(service: str) -> dict[str, Any]:
    port = SERVICE_PORTS[service]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(service, **{"app.kubernetes.io/name": service}),
        "spec": {"selector": {"app.kubernetes.io/name": service},
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }  # fmt: skip


def migration_job() -> dict[str, Any]:
    container = {
        "name": "migrate",
        "image": IMAGE,
        "command": ["python", "-m", "ticketflow.eventstore.migrate"],
        "envFrom": [{"secretRef": {"name": "ticketflow-secrets"}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": _security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("ticketflow-migrate"),
        "spec": {"backoffLimit": 6, "ttlSecondsAfterFinished": 86400,
                 "template": {"metadata": {"labels": LABELS},
                              "spec": {"restartPolicy": "OnFailure", "containers": [container]}}},
    }  # fmt: skip


def config_map() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("ticketflow-config"), "data": COMMON_ENV}


def desks_config_map() -> dict[str, Any]:
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(PACKAGED_DESKS.glob("*.toml"))}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("ticketflow-desks"), "data": files}


def kafka_topics() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": _meta(t.name.replace(".", "-"), **{"strimzi.io/cluster": CLUSTER}),
            "spec": {
                "topicName": t.name,
                "partitions": t.partitions,
                "replicas": REPLICAS,
                "config": {
                    "retention.ms": t.retention_ms,
                    "cleanup.policy": t.cleanup_policy,
                    "min.insync.replicas": MIN_IN_SYNC,
                },
            },
        }
        for t in TOPICS
    ]


def kafka_user() -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": _meta(KAFKA_USER, **{"strimzi.io/cluster": CLUSTER}),
        "spec": {"authentication": {"type": "scram-sha-512"}},
    }


def secret_example() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta("ticketflow-secrets"),
        "type": "Opaque",
        "stringData": {key: "CHANGE-ME" for key in SECRET_KEYS},
    }


def files() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {
        "config.yaml": [config_map()],
        "desks.yaml": [desks_config_map()],
        "kafka-user.yaml": [kafka_user()],
        "topics.yaml": kafka_topics(),
        "migrate-job.yaml": [migration_job()],
    }
    for service in SERVICE_PORTS:
        found[f"{service}.yaml"] = [deployment(service), service_object(service)]
    return found


def kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/version": "0.1.0"}}],
        "resources": list(files()),
    }


class _Plain(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints
    """No YAML anchors: each manifest reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump_all(docs: list[dict[str, Any]]) -> str:
    return str(yaml.dump_all(docs, Dumper=_Plain, sort_keys=False, width=120))


HEADER = "# Generated by `make k8s` (ticketflow.cli.k8s) from the code; do not edit.\n"


def render() -> dict[str, str]:
    out = {name: HEADER + _dump_all(docs) for name, docs in files().items()}
    out["kustomization.yaml"] = HEADER + _dump_all([kustomization()])
    out["secret.example.yaml"] = (
        "# Not applied by kustomize: create the real Secret with these keys (kubectl create secret generic\n"
        "# ticketflow-secrets --from-literal=...), or from your secret store.\n" + _dump_all([secret_example()])
    )
    return out


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "deploy/k8s/base")
    folder.mkdir(parents=True, exist_ok=True)
    rendered = render()
    for stale in set(p.name for p in folder.glob("*.yaml")) - set(rendered):
        (folder / stale).unlink()
    for name, text in rendered.items():
        (folder / name).write_text(text, encoding="utf-8")
    print(f"{folder}: {len(rendered)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
