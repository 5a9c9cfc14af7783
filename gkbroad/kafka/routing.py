"""Where Kafka records go: which producer pulls a partition, and which processor
and batch processor handle a record, for each `ordering`.

A lane is what must be handled in offset order, one record at a time:
- "partition": a (topic, partition). Every record of a partition goes to one
  processor greenlet and its batches to one batch processor.
- "key": a (topic, partition, key). Records of one key go to one processor, in
  offset order; other keys of the same partition run on other processors at the
  same time. Records without a key share the lane of key None. Batches are
  routed by their batch_key, so batches with equal keys stay in order (the
  default batch_key (topic, partition) keeps a partition's batches in order).
- "none": no lane. Processors share one queue and batch processors one outbox;
  any record may run at the same time as any other.

Offsets stay correct in every mode because the OffsetTracker commits a
partition only up to its lowest unacknowledged offset, whatever order the
acknowledgements arrive in.

Which producer greenlet pulls a partition is the partition number plus a
per-topic offset, modulo the producer count: consecutive partitions of a topic
go to consecutive producers, so each producer gets its even share (a hash of
(topic, partition) mod a small count can put every partition on one producer).
The offset is a crc32 of the topic name (Python's hash of a str is salted per
process; crc32 gives every run the same answer, which makes logs comparable), so
the first partitions of different topics do not all pile onto producer 0. It is
cached since it is asked for every round. Processor lanes only need to agree
within one pipeline: partitions are numbered as they come, key lanes use the
built-in hash.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Hashable
from typing import Any

from ..message import Message

__all__ = ["ORDERINGS", "partition_lanes", "owns", "producer_index", "route"]

ORDERINGS = ("partition", "key", "none")


@functools.cache
def _topic_offset(topic: str) -> int:
    return zlib.crc32(topic.encode())


def producer_index(topic: str, partition: int, count: int) -> int:
    """The producer greenlet (0 to count - 1) that pulls this partition; a topic's
    partitions take the producers in turn, so no producer has more than one
    partition of a topic over any other."""
    return (_topic_offset(topic) + partition) % count


def owns(topic: str, partition: int, index: int, count: int) -> bool:
    """True when producer `index` of `count` is the one that pulls this partition."""
    return producer_index(topic, partition, count) == index


def partition_lanes() -> Callable[[Message], int]:
    """A partition_by for "partition" ordering: every record of a partition on one greenlet.

    Partitions are numbered in the order they are first seen, so the first
    `concurrency` partitions get a processor (and batch processor) each instead
    of colliding by hash. The numbering lives as long as the pipeline, so a
    partition keeps its greenlet across reassignments. It reads the acknowledger
    data, which is the same for both message formats and whatever a handler did
    to `data`. (A closure rather than a class: it runs once per record.)
    """
    lanes: dict[tuple[Any, ...], int] = {}

    def partition_lane(message: Message) -> int:
        partition = message.acknowledger.data[:2]
        lane = lanes.get(partition)
        if lane is None:
            lane = lanes[partition] = len(lanes)
        return lane

    return partition_lane


def _key_lane(topic: str, partition: int, key: Hashable) -> int:
    try:
        return hash((topic, partition, key))
    except TypeError:  # a key_deserializer returned an unhashable object: equal keys have equal reprs
        return hash((topic, partition, repr(key)))


def partition_by_record_key(message: Message) -> int:
    """The key lane of a message in the "record" format (data is the ConsumerRecord)."""
    record = message.data
    return _key_lane(record.topic, record.partition, record.key)


def partition_by_value_key(message: Message) -> int:
    """The key lane of a message in the "value" format (the key is in metadata)."""
    metadata = message.metadata
    return _key_lane(metadata["topic"], metadata["partition"], metadata["key"])


def partition_by_batch_key(message: Message) -> int:
    """Batches with the same batch_key go to the same batch processor, in the order they filled."""
    return hash(message.batch_key)


_KEY_LANES = {"record": partition_by_record_key, "value": partition_by_value_key}


def route(pipeline_options: dict[str, Any], ordering: str, message_format: str) -> None:
    """Set the partition_by of the processors and of every batcher for `ordering`.

    Processors route a record when the producer hands it over, before any
    handler ran, so the key is still where `message_format` put it.
    """
    processors: Callable[[Message], int] | None
    batchers: Callable[[Message], int] | None
    if ordering == "partition":
        processors = batchers = partition_lanes()
    elif ordering == "key":
        processors, batchers = _KEY_LANES[message_format], partition_by_batch_key
    else:
        processors = batchers = None
    pipeline_options["processors"]["default"]["partition_by"] = processors
    for stage in pipeline_options["batchers"].values():
        stage["partition_by"] = batchers
