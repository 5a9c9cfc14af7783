"""What LibrdkafkaClient reads out of librdkafka: fetched records, errors, statistics, futures.

Records: ``consume()`` hands back confluent-kafka ``Message`` objects, whose
fields are methods. The group and the Kafka producer stage read kafka-python
``ConsumerRecord`` tuples (the "record" message format gives them to
handlers), so each Message becomes one ConsumerRecord in a single list
comprehension, built with ``tuple.__new__`` (no Python-level ``__new__``),
and the records are grouped by partition with C-level ``itertools.groupby``:
one translation per record and nothing more.

Statistics: librdkafka reports its state as a JSON document every
``statistics.interval.ms`` (through ``stats_cb``, served inside ``consume()``
on the poll greenlet). The members the group reads from any greenlet (fetch
positions, broker connections, the member state, when the group coordinator
last answered) are taken from the last report, so that no greenlet but the
poll greenlet ever calls the consumer.

The coordinator's connection is librdkafka's logical broker
"GroupCoordinator"; its ``rxidle`` (microseconds since the connection last
received anything: heartbeat, commit and join answers) tells when the
coordinator last answered. A connection that is down reports -1 there, so the
last time seen is kept until a connection receives again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

import kafka.errors as Errors
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

__all__ = [
    "LibrdkafkaError",
    "Statistics",
    "as_records",
    "by_partition",
    "drive",
    "kafka_error",
    "partition_list",
]

logger = logging.getLogger(__name__)

_new_tuple = tuple.__new__
_NO_HEADERS: tuple[()] = ()
_TOPIC_PARTITION = itemgetter(0, 1)

# librdkafka's cgrp join states once the member holds its assignment.
_STEADY = "steady"
# The name of librdkafka's logical broker for the group coordinator in a statistics report.
_COORDINATOR = "GroupCoordinator"


class LibrdkafkaError(Errors.KafkaError):  # type: ignore[misc]  # kafka-python ships no types
    """An error librdkafka reported locally (its negative codes), with its code name and words."""


def kafka_error(error: Any) -> Errors.KafkaError:
    """kafka-python's error for a confluent-kafka ``KafkaError``: librdkafka passes the broker's
    error codes through unchanged, so they map onto kafka-python's classes (the committer then
    tells "the group is rebalancing" apart as for kafka-python); local errors keep their own name."""
    code = error.code()
    if code > 0:
        return Errors.for_code(code)(error.str())
    return LibrdkafkaError(f"{error.name()}: {error.str()}")


def as_records(messages: list[Any]) -> list[ConsumerRecord]:
    """kafka-python ConsumerRecords for the Messages without an error, in one pass.

    ``checksum`` is None and the serialized sizes -1: librdkafka does not report them."""
    return [
        _new_tuple(
            ConsumerRecord,
            (
                m.topic(),
                m.partition(),
                m.leader_epoch(),
                m.offset(),
                stamp[1],
                stamp[0],
                m.key(),
                m.value(),
                m.headers() or _NO_HEADERS,
                None,
                -1,
                -1,
                -1,
            ),
        )
        for m in messages
        if m.error() is None
        for stamp in (m.timestamp(),)
    ]


def by_partition(records: list[ConsumerRecord], names: dict[tuple[str, int], TopicPartition]) -> dict[Any, list[Any]]:
    """{TopicPartition: its records, in offset order}; ``names`` caches the TopicPartitions."""
    fetched: dict[Any, list[Any]] = {}
    for key, run in groupby(records, _TOPIC_PARTITION):
        tp = names.get(key)
        if tp is None:
            tp = names[key] = TopicPartition(*key)
        held = fetched.get(tp)
        if held is None:
            fetched[tp] = list(run)
        else:
            held.extend(run)
    return fetched


def drive(coroutine: Any) -> None:
    """Run a rebalance coroutine to its end: LibrdkafkaClient.wait blocks the greenlet (cooperatively)
    instead of suspending the coroutine, so one send finishes it."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise LibrdkafkaError("a rebalance coroutine suspended; LibrdkafkaClient's waits never do")


@dataclass
class Statistics:
    """The last statistics report of librdkafka, as the client's read-only members need it."""

    brokers_up: bool = False
    coordinator_up: bool = False
    # time.monotonic() when the coordinator last answered, as far as the reports tell; None before any answer.
    coordinator_answered: float | None = None
    join_state: str | None = None
    cgrp_state: str | None = None
    # Where each partition's fetching stands (librdkafka's app_offset, else next_offset).
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    topics: frozenset[str] = frozenset()
    reports: int = 0
    # An "all brokers down" error came and no report since had a broker up.
    brokers_down: bool = False

    def read(self, document: str) -> None:
        """Take in one ``stats_cb`` JSON document."""
        try:
            stats = json.loads(document)
        except ValueError:
            logger.debug("librdkafka statistics not readable", exc_info=True)
            return
        self.reports += 1
        brokers = stats.get("brokers", {})
        self.brokers_up = any(broker.get("state") == "UP" for broker in brokers.values())
        self.brokers_down = self.brokers_down and not self.brokers_up
        coordinator = brokers.get(_COORDINATOR) or {}
        self.coordinator_up = coordinator.get("state") == "UP"
        idle_us = coordinator.get("rxidle", -1)
        if self.coordinator_up and idle_us >= 0:
            self.coordinator_answered = time.monotonic() - idle_us / 1e6
        cgrp = stats.get("cgrp") or {}
        self.join_state, self.cgrp_state = cgrp.get("join_state"), cgrp.get("state")
        topics = stats.get("topics", {})
        self.topics = frozenset(topics)
        partitions = [
            ((topic, int(partition)), values)
            for topic, described in topics.items()
            for partition, values in described.get("partitions", {}).items()
            if int(partition) >= 0
        ]
        self.positions = {}
        for key, values in partitions:
            position = max(values.get("app_offset", -1), -1)
            if position < 0:
                position = values.get("next_offset", -1)
            if position >= 0:
                self.positions[key] = position

    @property
    def reachable(self) -> bool:
        """True once a report had a broker connection up, and no "all brokers down" error came since:
        before the first report nothing is known to be up (librdkafka connects in the background), and
        librdkafka has no error event saying that a broker is back."""
        return self.brokers_up and not self.brokers_down

    def no_coordinator(self) -> str | None:
        """Why no group coordinator can answer a request now, or None when the last report had it up."""
        if self.brokers_down:
            return "librdkafka reported every broker down"
        if not self.coordinator_up:
            return "the group coordinator was not connected in librdkafka's last statistics report"
        return None

    @property
    def steady(self) -> bool:
        """The member holds its assignment of the current generation, as far as it knows: librdkafka
        stays in this join state while its coordinator is silent, until its own session timeout."""
        return self.join_state == _STEADY

    def member_state(self, assigned_once: bool) -> str:
        """gkbroad's word for the member state; before the first report, from the callbacks seen."""
        if self.join_state is None:
            return "stable" if assigned_once else "unjoined"
        if self.join_state == _STEADY and self.cgrp_state == "up":
            return "stable"
        return "unjoined" if self.join_state == "init" else "rebalancing"


def partition_list(module: Any, tps: Iterable[Any], offset: Callable[[Any], int] | None = None) -> list[Any]:
    """confluent-kafka TopicPartitions for kafka-python ones (at ``offset(tp)`` when given)."""
    if offset is None:
        return [module.TopicPartition(tp.topic, tp.partition) for tp in tps]
    return [module.TopicPartition(tp.topic, tp.partition, offset(tp)) for tp in tps]
