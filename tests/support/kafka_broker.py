"""A private Kafka broker for tests that stop the broker (the shared one is never touched), started and
stopped by the project's own scripts (deploy/scripts/kafka-up.sh, kafka-down.sh) on free ports, with all
their state in a temporary directory (TICKETFLOW_LOCAL_DIR).

The broker's jars are not fetched again when a checkout already has them: this checkout's
`.local/kafka/<version>/libs` (after `make infra-up` here), TICKETFLOW_KAFKA_LIBS, or the main worktree's
(a `git worktree` of it shares its jars); otherwise kafka-up.sh fetches them with Maven (once per broker).

    with PrivateKafka() as kafka:
        producer = make_producer(kafka.bootstrap)
        kafka.stop()      # unavailable: connections refused (a controlled shutdown; data kept)
        kafka.start()     # back, with its topics, offsets and transactions
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from support.infra import REPO_ROOT, pinned_kafka_version
from support.private_postgres import free_port

SCRIPTS = REPO_ROOT / "deploy" / "scripts"
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"


def existing_libs(version: str) -> Path | None:
    """A directory holding the broker's jars for `version` already, if one can be found."""
    candidates = [Path(os.environ["TICKETFLOW_KAFKA_LIBS"])] if os.environ.get("TICKETFLOW_KAFKA_LIBS") else []
    candidates.append(REPO_ROOT / ".local" / "kafka" / version / "libs")
    common = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    if common:
        candidates.append((REPO_ROOT / common).resolve().parent / ".local" / "kafka" / version / "libs")
    return next((c for c in candidates if (c / ".complete").exists()), None)


class PrivateKafka:
    def __init__(self) -> None:
        self.port, self.controller_port = free_port(), free_port()
        self.local_dir = Path(tempfile.mkdtemp(prefix="tf-private-kafka-"))
        version = pinned_kafka_version()
        libs = existing_libs(version)
        if libs is not None:  # the scripts' marker says "fetched for this pom": no Maven
            (self.local_dir / "kafka" / version).mkdir(parents=True)
            (self.local_dir / "kafka" / version / "libs").symlink_to(libs)
            digest = hashlib.sha256(POM.read_bytes()).hexdigest()
            if (libs / ".complete").read_text().strip() != digest:
                raise RuntimeError(f"{libs} holds jars for another deploy/kafka/pom.xml")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, name: str) -> str:
        env = {
            **os.environ,
            "TICKETFLOW_LOCAL_DIR": str(self.local_dir),
            "TICKETFLOW_KAFKA_PORT": str(self.port),
            "TICKETFLOW_KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        run = subprocess.run(["bash", str(SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{run.stdout}{run.stderr}")
        return run.stdout

    def start(self) -> None:
        self._script("kafka-up.sh")

    def stop(self) -> None:
        self._script("kafka-down.sh")

    def __enter__(self) -> PrivateKafka:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.local_dir, ignore_errors=True)
