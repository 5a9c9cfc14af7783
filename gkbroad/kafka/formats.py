"""Turning kafka-python ConsumerRecords into Messages, in the two supported shapes.

"record": `data` is the ConsumerRecord itself (topic, partition, offset,
timestamp, key, value, headers, ...), lossless and familiar to kafka-python
users; `metadata` is empty.
"value": `data` is the record's value and `metadata` holds topic, partition,
offset, key, ts and headers (a list of (key, value) tuples), the shape
broadway_kafka users know.

Either way the acknowledger data is (topic, partition, offset, epoch), its ref
(topic, partition, epoch), shared by the records of one pull (a chunk, see
gkbroad.producer), and the default batch_key is (topic, partition).
"""

from __future__ import annotations

import functools
from typing import Any

from ..message import DEFAULT_BATCHER, Acknowledger, Message

__all__ = ["MESSAGE_FORMATS", "build_messages"]

MESSAGE_FORMATS = ("record", "value")

# Acknowledger(handler, ref, data) without the Python-level __new__ of a
# NamedTuple: this runs once per record.
_acknowledger = functools.partial(tuple.__new__, Acknowledger)


def build_messages(
    records: list[Any], epoch: int, ack_handler: Any, ack_ref: Any, message_format: str
) -> list[Message]:
    """Messages for records pulled from one partition in one call.

    They share topic, partition and epoch, so the batch_key tuple is built once
    and shared (it is immutable); everything else is per record. The Messages
    are built with positional arguments (data, acknowledger, metadata, batcher,
    batch_key): keyword arguments would double the cost of building them.
    """
    if not records:
        return []
    topic, partition = records[0].topic, records[0].partition
    batch_key = (topic, partition)
    if message_format == "record":
        return [
            Message(
                record,
                _acknowledger((ack_handler, ack_ref, (topic, partition, record.offset, epoch))),
                {},
                DEFAULT_BATCHER,
                batch_key,
            )
            for record in records
        ]
    return [
        Message(
            record.value,
            _acknowledger((ack_handler, ack_ref, (topic, partition, record.offset, epoch))),
            {
                "topic": topic,
                "partition": partition,
                "offset": record.offset,
                "key": record.key,
                "ts": record.timestamp,
                "headers": [tuple(header) for header in record.headers or ()],
            },
            DEFAULT_BATCHER,
            batch_key,
        )
        for record in records
    ]
