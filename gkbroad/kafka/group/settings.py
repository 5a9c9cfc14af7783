"""The kafka-python ``KafkaConsumer`` settings of a ConsumerGroup.

gkbroad's options (validated by gkbroad.kafka.options) do not map one to one
onto kafka-python's: some are per topic where kafka-python has one value per
consumer, and gkbroad sets several settings itself (manual commits, its own
offset reset, a poll size that keeps the buffers bounded). This module is the
one place that translates; it checks nothing, the options schema did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..client import ASSIGNORS, LIBRDKAFKA_ASSIGNORS, LIBRDKAFKA_PARTITION_FETCH_BYTES, PARTITION_FETCH_BYTES

__all__ = ["GroupSettings"]

# fetch_strategy option -> kafka-python setting, and librdkafka's.
FETCH_STRATEGY = {"max_wait_ms": "fetch_max_wait_ms", "min_bytes": "fetch_min_bytes", "max_bytes": "fetch_max_bytes"}
LIBRDKAFKA_FETCH_STRATEGY = {
    "max_wait_ms": "fetch.wait.max.ms",
    "min_bytes": "fetch.min.bytes",
    "max_bytes": "fetch.max.bytes",
}

# librdkafka's group timeouts where gkbroad's options leave them unset: kafka-python's defaults, so that
# both clients behave alike (librdkafka's own session timeout is 45 s).
LIBRDKAFKA_SESSION_MS, LIBRDKAFKA_HEARTBEAT_MS = 10000, 3000
# librdkafka prefetches up to this much per consumer (its default is 64 MiB): gkbroad's buffers bound the rest.
LIBRDKAFKA_QUEUED_KBYTES = 8192
# librdkafka tops up its prefetch of a partition when it holds fewer than queued.min.messages (gkbroad sets
# the poll batch: what one poll takes), re-checks that every 10 ms (its default: 1 s) and lets the broker
# hold a fetch 100 ms at most (its default: 500 ms); see docs/guides/clients.md for what they were measured
# to do.
LIBRDKAFKA_QUEUE_BACKOFF_MS, LIBRDKAFKA_FETCH_WAIT_MS = 10, 100

_MAX_POLL_RECORDS = 500
# The default stall timeout, and its margin over a long drain_timeout.
_STALL_TIMEOUT_MS, _STALL_OVER_DRAIN_MS = 60000, 30000


@dataclass(frozen=True)
class GroupSettings:
    """The consumer-group options of a validated KafkaProducerOptions, each named once.

    Built once by `from_options`, which reads exactly the fields below from the
    validated options (anything else there belongs to the producer stage).
    ``topics`` are validated topic configs; they share one isolation level (the
    schema checks it). Times are in milliseconds.
    """

    group_name: str
    topics: tuple[Mapping[str, Any], ...]
    client: Mapping[str, Any] | None
    fetch_strategy: Mapping[str, Any] | None
    committers_count: int
    commit_interval: int
    instance_id: str | None
    rebalance_timeout_ms: int | None
    session_timeout_ms: int | None
    heartbeat_interval_ms: int | None
    drain_timeout: int
    stall_timeout_ms: int | None
    partition_assignment_strategy: str
    client_library: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GroupSettings:
        values = {field.name: options[field.name] for field in fields(cls)}
        values["topics"] = tuple(values["topics"])
        return cls(**values)

    def stall_timeout(self) -> float:
        """Seconds out of a stable generation, or without a broker, before the member counts as stalled."""
        if self.stall_timeout_ms is not None:
            return self.stall_timeout_ms / 1000
        return max(_STALL_TIMEOUT_MS, self.drain_timeout + _STALL_OVER_DRAIN_MS) / 1000

    def topic_configs(self) -> dict[str, Mapping[str, Any]]:
        """Each topic's validated config by name."""
        return {topic["name"]: topic for topic in self.topics}

    def poll_batch(self) -> int:
        """Most records one poll may return.

        A partition is paused while its buffer could not take that many more,
        so buffers never overflow."""
        smallest: int = min(config["max_buffer_records"] for config in self.topics)
        return max(1, min(_MAX_POLL_RECORDS, smallest // 4))

    def kafka_settings(self, client: Mapping[str, Any]) -> dict[str, Any]:
        """KafkaConsumer keyword arguments, over the connection settings ``client``.

        The largest ``fetch_max_bytes`` of the topics applies to every
        partition (kafka-python has one per consumer). ``rebalance_timeout_ms``
        becomes ``max_poll_interval_ms``, which kafka-python sends as the
        rebalance timeout. Consumers do not create the topics they subscribe
        to unless ``client`` sets ``allow_auto_create_topics`` (a mistyped
        name must not become a topic).
        """
        settings = {"allow_auto_create_topics": False, **client}
        settings.update(
            group_id=self.group_name,
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            # The poll greenlet resets offsets per topic, as each topic's policy says.
            auto_offset_reset="none",
            partition_assignment_strategy=[ASSIGNORS[self.partition_assignment_strategy]],
            isolation_level=self.topics[0]["isolation_level"],
            max_poll_records=self.poll_batch(),
        )
        settings.update(self._fetch_settings("max_partition_fetch_bytes", PARTITION_FETCH_BYTES, FETCH_STRATEGY))
        for key, value in (
            ("max_poll_interval_ms", self.rebalance_timeout_ms),
            ("session_timeout_ms", self.session_timeout_ms),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
        ):
            if value is not None:
                settings[key] = value
        return settings

    def _fetch_settings(self, partition_bytes: str, default_bytes: int, names: Mapping[str, str]) -> dict[str, Any]:
        """The fetch sizes and waits the options set, in one client's names: ``partition_bytes`` for the
        largest per-partition fetch of the topics (a topic without ``fetch_max_bytes`` counts as the
        client's ``default_bytes``), ``names`` for each ``fetch_strategy`` option."""
        settings: dict[str, Any] = {
            partition_bytes: max(config["fetch_max_bytes"] or default_bytes for config in self.topics)
        }
        for option, value in (self.fetch_strategy or {}).items():
            if value is not None:
                settings[names[option]] = value
        return settings

    def librdkafka_settings(self, client: Mapping[str, Any]) -> dict[str, Any]:
        """librdkafka's configuration for the group, over the connection settings ``client`` (in librdkafka's
        names). The same choices as ``kafka_settings``: no auto commit, and no offset stored but by gkbroad;
        gkbroad resets offsets per topic (``auto.offset.reset=error`` reports a partition without a usable
        committed offset); topics are not created by subscribing. librdkafka prefetches a poll's worth per
        partition (``queued.min.messages``), which is also what the client holds back of a paused one."""
        settings = {
            "allow.auto.create.topics": False,
            "queued.max.messages.kbytes": LIBRDKAFKA_QUEUED_KBYTES,
            "fetch.queue.backoff.ms": LIBRDKAFKA_QUEUE_BACKOFF_MS,
            "fetch.wait.max.ms": LIBRDKAFKA_FETCH_WAIT_MS,
            **client,
            "queued.min.messages": self.poll_batch(),
            "group.id": self.group_name,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": False,
            "partition.assignment.strategy": LIBRDKAFKA_ASSIGNORS[self.partition_assignment_strategy],
            "isolation.level": self.topics[0]["isolation_level"],
            "session.timeout.ms": self.session_timeout_ms or LIBRDKAFKA_SESSION_MS,
            "heartbeat.interval.ms": self.heartbeat_interval_ms or LIBRDKAFKA_HEARTBEAT_MS,
        }
        if self.instance_id is not None:
            settings["group.instance.id"] = self.instance_id
        if self.rebalance_timeout_ms is not None:
            settings["max.poll.interval.ms"] = self.rebalance_timeout_ms
        settings.update(
            self._fetch_settings(
                "max.partition.fetch.bytes", LIBRDKAFKA_PARTITION_FETCH_BYTES, LIBRDKAFKA_FETCH_STRATEGY
            )
        )
        return settings
