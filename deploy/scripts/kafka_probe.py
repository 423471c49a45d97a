#!/usr/bin/env python3
"""Ask a Kafka listener whether it really serves: ApiVersions, then a Metadata request.

Standard library only, so `make infra-up` can run it before `make setup` has built .venv.

Exit codes: 0 = a Kafka broker answered (one line of facts on stdout); 1 = nothing listens there;
2 = something listens there but it does not speak Kafka (or not yet: the broker is still starting).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
METADATA_VERSION = 4  # non-flexible encoding; served by Kafka 1.0 through 4.x
CLIENT_ID = b"ticketflow-probe"


class NotKafkaError(Exception):
    """The peer answered with something that is not a Kafka response."""


def _request(sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id (int16-length string).
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _read_exactly(sock, 4))[0]
    if not 4 <= size <= 64 * 1024 * 1024:
        raise NotKafkaError(f"implausible response size {size}")
    response = _read_exactly(sock, size)
    if struct.unpack(">i", response[:4])[0] != correlation_id:
        raise NotKafkaError("correlation id mismatch")
    return response[4:]


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            raise NotKafkaError("connection closed by peer")
        chunks.extend(chunk)
    return bytes(chunks)


def _metadata_range(api_versions_body: bytes) -> tuple[int, int] | None:
    error_code, count = struct.unpack(">hi", api_versions_body[:6])
    if error_code != 0:
        raise NotKafkaError(f"ApiVersions error code {error_code}")
    for index in range(count):
        key, low, high = struct.unpack(">hhh", api_versions_body[6 + 6 * index : 12 + 6 * index])
        if key == API_METADATA:
            return low, high
    return None


def _string(buffer: bytes, offset: int) -> tuple[str | None, int]:
    length = struct.unpack(">h", buffer[offset : offset + 2])[0]
    offset += 2
    if length < 0:
        return None, offset
    return buffer[offset : offset + length].decode(), offset + length


def _describe_cluster(metadata_body: bytes) -> str:
    offset = 4  # throttle_time_ms
    broker_count = struct.unpack(">i", metadata_body[offset : offset + 4])[0]
    offset += 4
    brokers = []
    for _ in range(broker_count):
        node_id = struct.unpack(">i", metadata_body[offset : offset + 4])[0]
        host, offset = _string(metadata_body, offset + 4)
        port = struct.unpack(">i", metadata_body[offset : offset + 4])[0]
        _rack, offset = _string(metadata_body, offset + 4)
        brokers.append(f"{node_id}@{host}:{port}")
    cluster_id, offset = _string(metadata_body, offset)
    controller_id = struct.unpack(">i", metadata_body[offset : offset + 4])[0]
    if not brokers:
        raise NotKafkaError("metadata lists no broker yet")
    return f"cluster_id={cluster_id} brokers={','.join(brokers)} controller={controller_id}"


def probe(host: str, port: int, timeout: float) -> str:
    """Return a one-line description of the cluster; raise OSError or NotKafkaError."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            metadata_range = _metadata_range(_request(sock, API_VERSIONS, 0, 1, b""))
            if metadata_range is None or not metadata_range[0] <= METADATA_VERSION <= metadata_range[1]:
                return "kafka (metadata v4 not offered; ApiVersions answered)"
            # Metadata v4 body: topics = null (all), allow_auto_topic_creation = false.
            body = _request(sock, API_METADATA, METADATA_VERSION, 2, struct.pack(">ib", -1, 0))
            return _describe_cluster(body)
        except (struct.error, UnicodeDecodeError, TimeoutError) as error:
            raise NotKafkaError(str(error) or type(error).__name__) from error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT, e.g. 127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per socket operation")
    arguments = parser.parse_args()
    host, _, port = arguments.address.rpartition(":")
    try:
        print(probe(host, int(port), arguments.timeout))
    except NotKafkaError as error:
        print(f"{arguments.address} is listening but did not answer as a Kafka broker: {error}")
        return 2
    except OSError as error:
        print(f"nothing answers at {arguments.address}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
