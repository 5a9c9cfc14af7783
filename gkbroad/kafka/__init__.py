"""Kafka for gkbroad: the producer stage and the consumer group it drives.

Import this only after ``gevent.monkey.patch_all()``: kafka-python picks its
network selector when it is first imported, and gkbroad refuses to start a
consumer group when the order was wrong.
"""

from .dead_letter import DeadLetter, DeadLetterError
from .group import ConsumerGroup, OffsetTracker
from .outputs import OutputRecord, OutputsNotWritten, add_output
from .producer import Producer
from .transactions import TransactionAborted, TransactionBroken, Transactions

__all__ = [
    "ConsumerGroup",
    "DeadLetter",
    "DeadLetterError",
    "OffsetTracker",
    "OutputRecord",
    "OutputsNotWritten",
    "Producer",
    "TransactionAborted",
    "TransactionBroken",
    "Transactions",
    "add_output",
]
