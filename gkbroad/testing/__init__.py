"""Test a pipeline without Kafka, or with a throwaway broker.

`running`, `test_message`, `test_batch` and `wait_for_ack` drive a pipeline
on plain data through `DummyProducer` (see helpers.py); `LocalBroker` starts
the bundled Kafka-compatible broker on loopback for tests and demos (see
broker.py).
"""

from .broker import BrokerError, LocalBroker
from .helpers import AckTimeout, DummyProducer, running, test_batch, test_message, wait_for_ack

__all__ = [
    "AckTimeout",
    "BrokerError",
    "DummyProducer",
    "LocalBroker",
    "running",
    "test_batch",
    "test_message",
    "wait_for_ack",
]
