"""How every Kafka client of the project authenticates and encrypts: one `KafkaSecurity` (read from the
environment by `ServiceSettings.kafka_security()`), mapped here to aiokafka's options (producers,
consumers, the admin client) and to FastStream's security object (the services' broker).

- `PLAINTEXT` (development): nothing.
- `SSL`: TLS to the broker (`ca_file` to trust its certificate); with `cert_file` and `key_file` the
  client presents its own certificate (mutual TLS, the client's identity is the certificate's).
- `SASL_PLAINTEXT` / `SASL_SSL`: a user name and password with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN
  (Strimzi's `KafkaUser` with `authentication: scram-sha-512` makes such a user); `SASL_SSL` adds TLS.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class KafkaSecurityError(ValueError):
    """The security settings contradict each other; the message says which and what to set."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def __post_init__(self) -> None:
        if self.sasl and not (self.username and self.password):
            raise KafkaSecurityError(f"{self.protocol} needs a SASL user name and password")
        if not self.sasl and (self.username or self.password):
            raise KafkaSecurityError(f"a SASL user name or password is set, but the protocol is {self.protocol}")
        if bool(self.cert_file) != bool(self.key_file):
            raise KafkaSecurityError("a client certificate needs its key, and a key its certificate")
        if not self.tls and (self.ca_file or self.cert_file):
            raise KafkaSecurityError(f"TLS files are set, but the protocol is {self.protocol} (SSL or SASL_SSL)")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS with the given CA (else the system's) and, for mutual TLS, the client's certificate."""
        if not self.tls:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ca_file or None, certfile=self.cert_file or None, keyfile=self.key_file or None
        )
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        return options

    def broker_security(self) -> BaseSecurity | None:
        """FastStream's security object for a `KafkaBroker` (it maps it to the same aiokafka options)."""
        if self.protocol == "PLAINTEXT":
            return None
        context = self.ssl_context()
        if not self.sasl:
            return BaseSecurity(ssl_context=context, use_ssl=True)
        kind = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512, "PLAIN": SASLPlaintext}
        return kind[self.sasl_mechanism](self.username, self.password, ssl_context=context, use_ssl=self.tls)


PLAINTEXT = KafkaSecurity()
