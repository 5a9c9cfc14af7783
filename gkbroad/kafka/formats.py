"""Turning kafka-python ConsumerRecords into Messages, in the two supported shapes.

"record": `data` is the ConsumerRecord itself (topic, partition, offset,
timestamp, key, value, headers, ...), lossless and familiar to kafka-python
users; `metadata` is empty.
"value": `data` is the record's value and `metadata` holds topic, partition,
offset, key, ts and headers (a list of (key, value) tuples), the shape
broadway_kafka users know.

Either way the acknowledger data is (topic, partition, offset, epoch) and the
default batch_key is (topic, partition).
"""

from __future__ import annotations

from typing import Any

from ..message import Acknowledger, Message

__all__ = ["MESSAGE_FORMATS", "build_message"]

MESSAGE_FORMATS = ("record", "value")


def build_message(record: Any, epoch: int, ack_handler: Any, ack_ref: Any, message_format: str) -> Message:
    acknowledger = Acknowledger(ack_handler, ack_ref, (record.topic, record.partition, record.offset, epoch))
    if message_format == "record":
        data, metadata = record, {}
    else:
        data = record.value
        metadata = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "ts": record.timestamp,
            "headers": [tuple(header) for header in record.headers or ()],
        }
    return Message(data=data, acknowledger=acknowledger, metadata=metadata, batch_key=(record.topic, record.partition))
