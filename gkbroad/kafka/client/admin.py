"""Kafka requests for the command line, through kafka-python's public API only.

`gkbroad check --connect`, `lag`, `offsets` and `produce` (and the demo) need a
handful of one-shot requests: which topics exist and how many partitions they
have, what a group committed and who its members are, where each partition's
log starts and ends, which offset a point in time falls on, changing a group's
committed offsets, creating a topic, producing records. Each function opens
its own client, does its job and closes it.

``client`` is always a dict of kafka-python settings with ``bootstrap_servers``
(a pipeline's ``client`` option fits: each function keeps the settings its
kafka-python class knows, such as the security ones, and drops the rest).
Failures from kafka-python become KafkaRequestError, which says what was being
done; the settings themselves (passwords) are never part of a message, and a
secret value that kafka-python's own words quote is redacted.

Log end offsets are read from the high watermark of a Fetch response, not from
ListOffsets alone: the bundled Tansu broker answers ListOffsets("latest") with
the base offset of the partition's last record batch + 1, which is too low
whenever that batch holds several records. A Fetch from there returns at most
that last batch and the true end, on Tansu and on a real Kafka alike.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, NoError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from kafka.structs import OffsetAndMetadata

from ...config.redact import scrub
from ...errors import GkbroadError
from .consumer import offset_found

__all__ = [
    "PRIVATE_NAMES",
    "KafkaRequestError",
    "commit_group_offsets",
    "committed_offsets",
    "create_topic",
    "group_members",
    "log_offsets",
    "offsets_at",
    "produce",
    "topic_partitions",
]

logger = logging.getLogger(__name__)

_CLIENT_ID = "gkbroad-cli"

# kafka-python private names used here (tests/unit/test_kafka_client.py checks them).
PRIVATE_NAMES = ((KafkaAdminClient, "_process_acl_operations"),)


class KafkaRequestError(GkbroadError, RuntimeError):
    """A request to Kafka failed: no broker answered, or a broker refused it."""


def _settings(kafka_class: type[Any], client: dict[str, Any], timeout: float, **overrides: Any) -> dict[str, Any]:
    """The settings of `client` that `kafka_class` takes, with timeouts of `timeout` seconds."""
    settings = {key: value for key, value in client.items() if key in kafka_class.DEFAULT_CONFIG}
    settings.setdefault("client_id", _CLIENT_ID)
    settings["bootstrap_timeout_ms"] = int(timeout * 1000)
    settings.update(overrides)
    return settings


@contextmanager
def _failing_as(what: str, client: dict[str, Any]) -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        servers = client.get("bootstrap_servers")
        detail = scrub(str(exc) or type(exc).__name__, client)
        raise KafkaRequestError(f"{what} at {servers}: {detail}") from exc


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """KafkaAdminClient that leaves the ACL operations of a DescribeGroups answer undecoded.

    kafka-python 3.0.12 decodes them into an enum and fails on a bit it does not
    know (the bundled Tansu sets one); gkbroad never reads them."""

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj


@contextmanager
def _admin(client: dict[str, Any], timeout: float, what: str) -> Iterator[KafkaAdminClient]:
    with _failing_as(what, client):
        admin = _AdminClient(**_settings(KafkaAdminClient, client, timeout, request_timeout_ms=int(timeout * 1000)))
        try:
            yield admin
        finally:
            admin.close()


def topic_partitions(client: dict[str, Any], topics: Iterable[str], timeout: float = 10.0) -> dict[str, int | None]:
    """{topic: its partition count, or None when it does not exist}; never creates a topic."""
    topics = list(dict.fromkeys(topics))
    if not topics:
        return {}
    with _admin(client, timeout, "describing topics") as admin:
        described = admin.describe_topics(topics)
    counts: dict[str, int | None] = dict.fromkeys(topics)
    for topic in described:
        if topic["error_code"] == UnknownTopicOrPartitionError.errno:
            continue
        if topic["error_code"]:
            raise KafkaRequestError(f"describing topic {topic['name']!r}: error code {topic['error_code']}")
        counts[topic["name"]] = len(topic["partitions"])
    return counts


def create_topic(client: dict[str, Any], topic: str, partitions: int, timeout: float = 10.0) -> bool:
    """Create `topic` with `partitions` partitions (replication 1); False if it already existed."""
    with _admin(client, timeout, f"creating topic {topic!r}") as admin:
        try:
            admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})
        except TopicAlreadyExistsError:
            return False
        admin.wait_for_topics([topic], timeout_ms=int(timeout * 1000))
    return True


def committed_offsets(client: dict[str, Any], group: str, timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """{(topic, partition): the offset `group` committed (the next one it will read)}."""
    with _admin(client, timeout, f"reading the offsets of group {group!r}") as admin:
        offsets = admin.list_group_offsets(group).get(group, {})
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def group_members(client: dict[str, Any], group: str, timeout: float = 10.0) -> list[str]:
    """The active members of `group`, each as "member id (client id on host)"; empty for an idle group."""
    with _admin(client, timeout, f"describing group {group!r}") as admin:
        described = admin.describe_groups([group]).get(group) or {}
    if described.get("error"):
        raise KafkaRequestError(f"describing group {group!r}: {described['error']}")
    members = []
    for member in described.get("members") or ():
        where = " on ".join(part for part in (member.get("client_id"), member.get("client_host")) if part)
        members.append(f"{member['member_id']} ({where})" if where else str(member["member_id"]))
    return members


def commit_group_offsets(
    client: dict[str, Any], group: str, offsets: dict[tuple[str, int], int], timeout: float = 10.0
) -> None:
    """Store `offsets` ({(topic, partition): the next offset to read}) as `group`'s committed offsets.

    Only for a group without active members: the broker refuses the commit otherwise."""
    to_commit = {TopicPartition(t, p): OffsetAndMetadata(offset, "", -1) for (t, p), offset in offsets.items()}
    if not to_commit:
        return
    with _admin(client, timeout, f"committing offsets of group {group!r}") as admin:
        results = admin.alter_group_offsets(group, to_commit)
    refused = {f"{tp.topic}[{tp.partition}]": error for tp, error in results.items() if error is not NoError}
    if refused:
        detail = ", ".join(f"{where}: {error.__name__}" for where, error in sorted(refused.items()))
        raise KafkaRequestError(f"committing offsets of group {group!r}: the broker refused {detail}")


def offsets_at(
    client: dict[str, Any], partitions: Iterable[tuple[str, int]], timestamp_ms: int, timeout: float = 10.0
) -> dict[tuple[str, int], int | None]:
    """{(topic, partition): the first offset whose record's timestamp is at or after `timestamp_ms`},
    None where no record is that late (the time is after the partition's last record, or it is empty).

    (See consumer.offset_found for how brokers say "none".)"""
    tps = [TopicPartition(topic, partition) for topic, partition in dict.fromkeys(partitions)]
    if not tps:
        return {}
    with _failing_as("looking up offsets by time", client):
        consumer = KafkaConsumer(**_settings(KafkaConsumer, client, timeout, group_id=None, enable_auto_commit=False))
        try:
            found = consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms), timeout_ms=int(timeout * 1000))
        finally:
            consumer.close()
    return {(tp.topic, tp.partition): offset_found(found.get(tp)) for tp in tps}


def log_offsets(
    client: dict[str, Any], partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """{(topic, partition): (log start offset, log end offset)}; the end is the offset the
    next produced record will get (see the module docstring for how it is read)."""
    tps = [TopicPartition(topic, partition) for topic, partition in dict.fromkeys(partitions)]
    if not tps:
        return {}
    with _failing_as("reading log offsets", client):
        consumer = KafkaConsumer(
            **_settings(KafkaConsumer, client, timeout, group_id=None, enable_auto_commit=False, max_poll_records=1)
        )
        try:
            starts = consumer.beginning_offsets(tps, timeout_ms=int(timeout * 1000))
            listed_ends = consumer.end_offsets(tps, timeout_ms=int(timeout * 1000))
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, listed_ends[tp])
            deadline = time.monotonic() + timeout
            while any(consumer.highwater(tp) is None for tp in tps):
                if time.monotonic() > deadline:
                    unknown = [f"{tp.topic}[{tp.partition}]" for tp in tps if consumer.highwater(tp) is None]
                    raise KafkaRequestError(f"no high watermark within {timeout}s for {', '.join(unknown)}")
                consumer.poll(timeout_ms=100)
            return {(tp.topic, tp.partition): (starts[tp], max(listed_ends[tp], consumer.highwater(tp))) for tp in tps}
        finally:
            consumer.close()


def produce(
    client: dict[str, Any], topic: str, records: Iterable[tuple[bytes | None, bytes]], timeout: float = 10.0
) -> dict[int, int]:
    """Produce ``(key, value)`` records to `topic` (the key decides the partition; None spreads
    them); returns {partition: records written}, once every record was acknowledged."""
    written: Counter[int] = Counter()
    errors: list[Exception] = []
    with _failing_as(f"producing to {topic!r}", client):
        producer = KafkaProducer(
            **_settings(KafkaProducer, client, timeout, request_timeout_ms=int(timeout * 1000), linger_ms=10)
        )
        try:
            for key, value in records:
                future = producer.send(topic, key=key, value=value)
                future.add_callback(lambda metadata: written.update((metadata.partition,)))
                future.add_errback(errors.append)
            producer.flush(timeout=timeout)
        finally:
            producer.close(timeout=timeout)
    if errors:
        raise KafkaRequestError(f"producing to {topic!r}: {len(errors)} record(s) failed, first: {errors[0]!r}")
    return dict(sorted(written.items()))
