"""Kafka's default partitioning (murmur2 of the key, as the Java client does), fast enough for a relay.

aiokafka computes murmur2 byte by byte in Python (about 6 µs for a 36-byte ticket id, a third of
the relay's time per event in a profile). `murmur2` here reads the key as little-endian
32-bit words in one `struct` call, with the same result (property-tested against aiokafka's);
`RememberingPartitioner` also remembers the partition of recent keys (a ticket's events share one).
`partitions_of` computes a whole batch of keys at once with numpy (the relay: a burst of SLA firings
has a new key per event, so remembering does not help there; per key in Python it was the largest
item of the relay's profile).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

import numpy as np

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as an unsigned 32-bit int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    body = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:body]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[body + 2] << 16
        if tail >= 2:
            h ^= data[body + 1] << 8
        h ^= data[body]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions` (0..partitions-1)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_of(keys: Sequence[bytes], partitions: int) -> list[int]:
    """`partition_of` of every key, computed with numpy over the keys of each length at once."""
    lengths = [len(key) for key in keys]
    if not keys:
        return []
    if min(lengths) == max(lengths):  # the usual batch: ticket ids, all 36 bytes
        return ((_murmur2_many(keys, lengths[0]) & 0x7FFFFFFF) % partitions).tolist()  # type: ignore[no-any-return]
    result = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(length, []).append(index)
    for length, indexes in by_length.items():
        found = (_murmur2_many([keys[i] for i in indexes], length) & 0x7FFFFFFF) % partitions
        for index, partition in zip(indexes, found.tolist(), strict=True):
            result[index] = partition
    return result


def _murmur2_many(keys: Sequence[bytes], length: int) -> np.ndarray[tuple[int], np.dtype[np.uint32]]:
    """`murmur2` of keys all `length` bytes long, as uint32 (numpy's uint32 arithmetic wraps as Java's)."""
    m = np.uint32(_M)
    data = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), length)
    h = np.full(len(keys), (0x9747B28C ^ length) & _MASK, np.uint32)
    body = length & ~3
    words = np.ascontiguousarray(data[:, :body]).view("<u4")
    for column in range(body // 4):
        k = words[:, column] * m
        k ^= k >> np.uint32(24)
        k *= m
        h *= m
        h ^= k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[:, body + 2].astype(np.uint32) << np.uint32(16)
        if tail >= 2:
            h ^= data[:, body + 1].astype(np.uint32) << np.uint32(8)
        h ^= data[:, body].astype(np.uint32)
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return h


class RememberedPartitionIndex:
    """`partition_of`, remembered for recent keys (a ticket's or a conversation's records share one)."""

    def __init__(self, kept: int = 100_000) -> None:
        self._kept = kept
        self._index: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes, partitions: int) -> int:
        index = self._index.get((key, partitions))
        if index is None:
            if len(self._index) >= self._kept:
                self._index.clear()
            index = self._index[(key, partitions)] = partition_of(key, partitions)
        return index


class RememberingPartitioner:
    """An aiokafka `partitioner=` with Kafka's default placement, remembered per key (bounded)."""

    def __init__(self, kept: int = 100_000) -> None:
        self._index = RememberedPartitionIndex(kept)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[self._index(key, len(all_partitions))]
