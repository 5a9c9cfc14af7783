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

The processors' partition_by of "partition" and "key" is a LaneSplitter (see
gkbroad.engine.stages.router): the router hands it a whole chunk (the records
of one pull) and gets its parts by lane back in one call.

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
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ..message import Message

__all__ = ["ORDERINGS", "KeyLanes", "PartitionLanes", "partition_lanes", "owns", "producer_index", "route"]

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


class PartitionLanes:
    """The processors' and batchers' partition_by for "partition" ordering: every record of a
    partition on one greenlet.

    Partitions are numbered in the order they are first seen, so the first
    `concurrency` partitions get a processor (and batch processor) each instead
    of colliding by hash. The numbering lives as long as the pipeline, so a
    partition keeps its greenlet across reassignments. It reads the acknowledger
    data, which is the same for both message formats and whatever a handler did
    to `data`. A whole chunk takes the lane of its first message: the Kafka
    producer's chunks are the records of one partition (their acknowledger ref
    is that partition and its epoch), so the router routes each in one step.
    """

    def __init__(self) -> None:
        self.lanes: dict[tuple[Any, ...], int] = {}

    def __call__(self, message: Message) -> int:
        partition = message.acknowledger.data[:2]
        lane = self.lanes.get(partition)
        if lane is None:
            lane = self.lanes[partition] = len(self.lanes)
        return lane

    def split(self, chunk: list[Message], count: int) -> dict[int, list[Message]]:
        return {self(chunk[0]) % count: chunk}


def partition_lanes() -> PartitionLanes:
    """A fresh numbering of partitions into lanes, for one pipeline."""
    return PartitionLanes()


def _key_lane(topic: str, partition: int, key: Hashable) -> int:
    try:
        return hash((topic, partition, key))
    except TypeError:  # a key_deserializer returned an unhashable object: equal keys have equal reprs
        return hash((topic, partition, repr(key)))


class KeyLanes:
    """The processors' partition_by for "key" ordering: a lane per (topic, partition, key).

    `keys` gives the (topic, partition, key) of each message of a list, in
    order: the record's own fields in the "record" format, the metadata in the
    "value" format (routing runs before any handler, so they are where the
    format put them). A chunk is split in one pass over its messages.
    """

    def __init__(self, keys: Callable[[list[Message]], Iterable[tuple[str, int, Hashable]]]):
        self.keys = keys

    def __call__(self, message: Message) -> int:
        [(topic, partition, key)] = self.keys([message])
        return _key_lane(topic, partition, key)

    def split(self, chunk: list[Message], count: int) -> dict[int, list[Message]]:
        parts: dict[int, list[Message]] = {}
        for message, (topic, partition, key) in zip(chunk, self.keys(chunk), strict=True):
            index = _key_lane(topic, partition, key) % count
            part = parts.get(index)
            if part is None:
                parts[index] = [message]
            else:
                part.append(message)
        return parts


def _record_keys(messages: list[Message]) -> Iterable[tuple[str, int, Hashable]]:
    """(topic, partition, key) of messages in the "record" format (data is the ConsumerRecord)."""
    return [(m.data.topic, m.data.partition, m.data.key) for m in messages]


def _value_keys(messages: list[Message]) -> Iterable[tuple[str, int, Hashable]]:
    """(topic, partition, key) of messages in the "value" format (the key is in metadata)."""
    return [(m.metadata["topic"], m.metadata["partition"], m.metadata["key"]) for m in messages]


def partition_by_batch_key(message: Message) -> int:
    """Batches with the same batch_key go to the same batch processor, in the order they filled."""
    return hash(message.batch_key)


_KEYS = {"record": _record_keys, "value": _value_keys}


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
        processors, batchers = KeyLanes(_KEYS[message_format]), partition_by_batch_key
    else:
        processors = batchers = None
    pipeline_options["processors"]["default"]["partition_by"] = processors
    for stage in pipeline_options["batchers"].values():
        stage["partition_by"] = batchers
