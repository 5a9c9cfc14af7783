"""KafkaRecordProducer: write records to Kafka through kafka-python and wait until the broker acknowledged each one.

The writers (dead letters, outputs, the retry topic) need one thing from a
client: produce a few records and know, within a bounded time, whether the
broker stored them all (the ``RecordProducer`` Protocol of writers.py).
This module does that with kafka-python's public KafkaProducer API only. Every
kafka-python failure (no broker, unknown topic, a timeout) becomes
ProduceFailed, whose message never contains the settings (they may hold
passwords).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from gevent.lock import Semaphore
from kafka import KafkaProducer
from kafka.errors import KafkaError

__all__ = [
    "PRODUCER_DEFAULTS",
    "ProduceFailed",
    "KafkaRecordProducer",
    "ProducerRecord",
    "close_producer",
    "producer_settings",
    "send_records",
]

logger = logging.getLogger(__name__)

# kafka-python's KafkaProducer settings and their defaults.
PRODUCER_DEFAULTS = KafkaProducer.DEFAULT_CONFIG

Header = tuple[str, bytes]
# (topic, key, value, headers): gkbroad.kafka.outputs.OutputRecord has this shape.
ProducerRecord = tuple[str, bytes | None, bytes | None, list[Header]]


class ProduceFailed(Exception):
    """Some record was not acknowledged by the broker in time (or was refused)."""


class KafkaRecordProducer:
    """One lazily connected KafkaProducer; ``send_all`` waits at most `timeout` seconds.

    `settings` are KafkaProducer settings; the connection is made by the first
    ``send_all`` (so a broker that is down at start is one more failed write, not
    a failed start). Safe to share between greenlets.
    """

    def __init__(self, settings: dict[str, Any], timeout: float):
        timeout_ms = max(int(timeout * 1000), 1)
        self._settings = {
            "bootstrap_timeout_ms": timeout_ms,
            "max_block_ms": timeout_ms,
            "request_timeout_ms": min(PRODUCER_DEFAULTS["request_timeout_ms"], timeout_ms),
            **settings,
        }
        self._settings.setdefault(
            "delivery_timeout_ms",
            max(timeout_ms, self._settings["request_timeout_ms"] + self._settings.get("linger_ms", 0)),
        )
        self._timeout = timeout
        self._producer: KafkaProducer | None = None
        self._connecting = Semaphore()

    def send_all(self, records: list[ProducerRecord]) -> None:
        """Produce ``(topic, key, value, headers)`` records, in order; return once the broker
        acknowledged every one, or raise ProduceFailed."""
        deadline = time.monotonic() + self._timeout
        try:
            producer = self._connect()
            futures = send_records(producer, records)
            producer.flush(timeout=max(deadline - time.monotonic(), 0.001))
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except KafkaError as exc:
            raise ProduceFailed(str(exc) or type(exc).__name__) from exc

    def close(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        close_producer(producer, timeout, "the record producer")

    def _connect(self) -> KafkaProducer:
        with self._connecting:
            if self._producer is None:
                self._producer = KafkaProducer(**self._settings)
            return self._producer

    def __repr__(self) -> str:  # the settings may hold secrets: never shown
        return f"<KafkaRecordProducer connected={self._producer is not None}>"


def producer_settings(client: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a consumer `client` mapping that say where and how to connect
    (servers, security, protocol version), as KafkaProducer settings."""
    return {
        key: value
        for key, value in client.items()
        if key in PRODUCER_DEFAULTS and (key.startswith(("ssl_", "sasl_")) or key in _CONNECTION_SETTINGS)
    }


_CONNECTION_SETTINGS = frozenset(
    {"bootstrap_servers", "security_protocol", "api_version", "proxy_url", "socks5_proxy", "client_dns_lookup"}
)


def send_records(producer: KafkaProducer, records: Iterable[ProducerRecord]) -> list[Any]:
    """Hand ``(topic, key, value, headers)`` records to `producer`, in order; their futures."""
    return [producer.send(topic, key=key, value=value, headers=headers) for topic, key, value, headers in records]


def close_producer(producer: KafkaProducer | None, timeout: float, what: str) -> None:
    """Close `producer` (if any) within `timeout` seconds; a failure is logged, never raised, since
    closing happens on the way out of a stop that must finish."""
    if producer is None:
        return
    try:
        producer.close(timeout=timeout)
    except Exception:
        logger.exception("closing %s failed", what)
