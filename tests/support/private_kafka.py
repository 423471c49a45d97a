"""A private single-node Kafka broker (KRaft) whose client listener asks for SASL/SCRAM-SHA-512, started
from the same jars as `make infra-up`'s broker (deploy/scripts/kafka-libs.sh fetches them into this
checkout's .local once) on free ports and a scratch directory, and stopped after the test. The shared
broker is never touched."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.infra import REPO_ROOT, pinned_kafka_version

USER, PASSWORD = "ticketflow", "scram-secret-for-tests"
PROPERTIES = """
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=INTERNAL://127.0.0.1:{internal},SASL://127.0.0.1:{sasl},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=INTERNAL://127.0.0.1:{internal},SASL://127.0.0.1:{sasl}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=INTERNAL:PLAINTEXT,SASL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs={data}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""


@dataclass(frozen=True)
class ScramBroker:
    bootstrap: str  # the SASL_PLAINTEXT listener
    user: str
    password: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def scram_broker(scratch: Path, timeout_s: float = 120) -> Iterator[ScramBroker]:
    fetched = subprocess.run(["bash", str(REPO_ROOT / "deploy/scripts/kafka-libs.sh")], capture_output=True,
                             text=True, check=False, timeout=900)  # fmt: skip
    assert fetched.returncode == 0, f"fetching the broker's jars failed:\n{fetched.stdout}{fetched.stderr}"
    libs = REPO_ROOT / ".local" / "kafka" / pinned_kafka_version() / "libs"
    ports = {"internal": _free_port(), "sasl": _free_port(), "controller": _free_port()}
    config = scratch / "server.properties"
    config.write_text(PROPERTIES.format(data=scratch / "data", **ports), encoding="utf-8")
    java = ["java", "-Xms128m", "-Xmx384m", f"-Dkafka.logs.dir={scratch}",
            f"-Dlog4j2.configurationFile={REPO_ROOT / 'deploy/kafka/log4j2.xml'}", "-cp", f"{libs}/*"]  # fmt: skip
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    scram = f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"
    format_storage = [*java, "kafka.tools.StorageTool", "format", "--config", str(config), "--cluster-id", cluster,
                      "--add-scram", scram]  # fmt: skip
    formatted = subprocess.run(format_storage, capture_output=True, text=True, check=False, timeout=120)
    assert formatted.returncode == 0, f"formatting failed:\n{formatted.stdout}{formatted.stderr}"
    log = (scratch / "broker.log").open("wb")
    process = subprocess.Popen([*java, "kafka.Kafka", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(ports["sasl"]):
            assert process.poll() is None, f"the private broker exited:\n{(scratch / 'broker.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the private broker did not listen in time"
            time.sleep(0.3)
        yield ScramBroker(f"127.0.0.1:{ports['sasl']}", USER, PASSWORD)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
