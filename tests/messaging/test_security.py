"""Kafka client security: the settings map to the same options for aiokafka's clients and for FastStream's
broker, contradictions are refused in one line, the password is never shown; and every kind of client the
project makes (admin, producer, consumer, the services' FastStream broker, the CLI) works against a
private broker that requires SASL/SCRAM-SHA-512, and fails with a wrong password."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faststream.kafka.security import parse_security
from support.private_kafka import ScramBroker, scram_broker

from ticketflow.cli.app import main
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.security import KafkaSecurity, KafkaSecurityError
from ticketflow.messaging.topics import TopicSpec, ensure_topics
from ticketflow.runtime.service import make_broker
from ticketflow.runtime.settings import ServiceSettings, SettingsError, load_settings


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    security = load_settings(ServiceSettings).kafka_security()
    assert security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert security.broker_security() is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_maps_to_the_same_options_for_aiokafka_and_for_faststream(mechanism: str) -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", mechanism, "svc", "pw")  # type: ignore[arg-type]
    options = security.client_options()
    assert options == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
                       "sasl_plain_username": "svc", "sasl_plain_password": "pw"}  # fmt: skip
    assert parse_security(security.broker_security()) == {**options, "ssl_context": None}


def test_sasl_ssl_and_mutual_tls_load_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("ticketflow-client")
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    scram = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", "pw", ca_file=str(ca_file))
    context = scram.client_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    assert parse_security(scram.broker_security())["security_protocol"] == "SASL_SSL"
    mutual = KafkaSecurity("SSL", ca_file=str(ca_file), cert_file=str(cert_file), key_file=str(key_file))
    options = mutual.client_options()
    assert options["security_protocol"] == "SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert parse_security(mutual.broker_security())["security_protocol"] == "SSL"
    with pytest.raises(ssl.SSLError):  # the key really is loaded: a wrong one is refused
        KafkaSecurity("SSL", ca_file=str(ca_file), cert_file=str(cert_file), key_file=str(ca_file)).ssl_context()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "SASL_SSL needs a SASL user name and password"),
        (
            {"kafka_sasl_username": "u", "kafka_sasl_password": "p"},
            "a SASL user name or password is set, but the protocol is PLAINTEXT",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "c.pem"},
            "a client certificate needs its key, and a key its certificate",
        ),
        ({"kafka_ssl_ca_file": "ca.pem"}, "TLS files are set, but the protocol is PLAINTEXT (SSL or SASL_SSL)"),
    ],
)
def test_contradictions_are_refused_in_one_line(settings: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(ServiceSettings, **settings)
    assert str(refused.value) == f"service: {problem}"
    with pytest.raises(KafkaSecurityError):  # the same check, wherever a KafkaSecurity is made
        KafkaSecurity("SASL_SSL")


def test_the_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TICKETFLOW_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("TICKETFLOW_KAFKA_SASL_PASSWORD", "hunter2-secret")
    settings = load_settings(ServiceSettings)
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in repr(settings.kafka_security())
    with pytest.raises(SettingsError) as refused:
        load_settings(ServiceSettings, pool_size="many")
    assert "hunter2-secret" not in str(refused.value)


@pytest.fixture(scope="module")
def scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramBroker]:
    with scram_broker(tmp_path_factory.mktemp("scram-kafka")) as broker:
        yield broker


def settings_for(broker: ScramBroker, password: str) -> ServiceSettings:
    return load_settings(ServiceSettings, kafka_bootstrap=broker.bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                         kafka_sasl_username=broker.user, kafka_sasl_password=password)  # fmt: skip


async def test_every_client_works_over_sasl_scram_on_a_private_broker(scram: ScramBroker) -> None:
    settings = settings_for(scram, scram.password)
    security = settings.kafka_security()
    topic = f"scram-{uuid.uuid4().hex[:6]}"
    assert await ensure_topics(scram.bootstrap, (TopicSpec(topic, 1, 3_600_000),), security=security) == [topic]
    producer = make_producer(scram.bootstrap, security)
    await producer.start()
    await producer.send_and_wait(topic, b"over scram", key=b"k")
    await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=scram.bootstrap, auto_offset_reset="earliest",
                                **security.client_options())  # fmt: skip
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert record.value == b"over scram"
    broker = make_broker(settings, "test")  # the services' FastStream broker
    await broker.connect()
    try:
        assert await broker.ping(timeout=10)
    finally:
        await broker.stop()


async def test_the_cli_connects_with_the_services_variables(
    scram: ScramBroker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("TICKETFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"), ("TICKETFLOW_KAFKA_BOOTSTRAP",
                        scram.bootstrap), ("TICKETFLOW_KAFKA_SASL_USERNAME", scram.user),
                        ("TICKETFLOW_KAFKA_SASL_PASSWORD", scram.password)):  # fmt: skip
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(main, ["--json", "topics", "create"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert {row["topic"] for row in created} >= {"ticket.events", "ops.commands"}
    monkeypatch.setenv("TICKETFLOW_KAFKA_SASL_PASSWORD", "wrong")
    assert await asyncio.to_thread(main, ["lag"]) == 1
    assert capsys.readouterr().err.startswith("ticketflow: error: ")


async def test_a_wrong_password_is_refused_by_the_broker(scram: ScramBroker) -> None:
    producer = make_producer(scram.bootstrap, settings_for(scram, "not-the-password").kafka_security())
    with pytest.raises(KafkaError):
        await asyncio.wait_for(producer.start(), 60)
    await producer.stop()
