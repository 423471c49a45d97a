"""Kafka's default partitioning, fast: the same partition as aiokafka's (and the Java client's) murmur2."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.messaging.partitioning import RememberingPartitioner, murmur2, partition_of, partitions_of


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(min_size=1, max_size=64), st.integers(1, 64))
def test_partition_of_is_the_default_partitioners(key: bytes, partitions: int) -> None:
    everything = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, everything, everything)


@pytest.mark.parametrize("partitions", [1, 3, 6, 12])
def test_remembering_partitioner_agrees_with_kafkas_default(partitions: int) -> None:
    remembering, default = RememberingPartitioner(kept=50), DefaultPartitioner()
    everything = list(range(partitions))
    for n in range(300):  # more keys than it keeps: the cache is cleared and refilled on the way
        key = f"express:bot:chat-{n % 120}".encode()
        assert remembering(key, everything, everything) == default(key, everything, everything)


@given(st.lists(st.binary(max_size=40), max_size=50), st.integers(1, 64))
def test_partitions_of_a_batch_are_each_keys_partition_of(keys: list[bytes], partitions: int) -> None:
    assert partitions_of(keys, partitions) == [partition_of(key, partitions) for key in keys]


@given(st.lists(st.uuids(), min_size=1, max_size=50), st.integers(1, 64))
def test_partitions_of_ticket_ids_are_the_default_partitioners(tickets: list[object], partitions: int) -> None:
    keys = [str(ticket).encode() for ticket in tickets]  # one length: the vectorised path alone
    everything = list(range(partitions))
    assert partitions_of(keys, partitions) == [DefaultPartitioner()(key, everything, everything) for key in keys]
