"""Stable hashing of partitions: which producer pulls a partition, which processor handles it.

Python's built-in hash of a str is salted per process, so two processes (or one
restarted) would disagree; crc32 gives every process and run the same answer.
Routing reads the (topic, partition) from the acknowledger data, so it is the
same for both message formats. A finer ordering key (per record key within a
partition) would only need another partition_by; nothing else assumes one
handler per partition.
"""

from __future__ import annotations

import zlib

from ..message import Message

__all__ = ["owns", "partition_by_partition", "stable_hash"]


def stable_hash(topic: str, partition: int) -> int:
    return zlib.crc32(f"{topic}\x00{partition}".encode())


def owns(topic: str, partition: int, index: int, count: int) -> bool:
    """True when producer `index` of `count` is the one that pulls this partition."""
    return stable_hash(topic, partition) % count == index


def partition_by_partition(message: Message) -> int:
    """The pipeline's partition_by for Kafka: every record of a partition on one greenlet."""
    topic, partition = message.acknowledger.data[:2]
    return stable_hash(topic, partition)
