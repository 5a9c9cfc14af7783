"""The `ordering` option against the real broker: what runs concurrently, what
stays in order, and that commits never pass an unhandled record in any mode,
including across a SIGKILL and a restart."""

from __future__ import annotations

import random
import signal
from collections import defaultdict

import gevent
import pytest
from kafka import KafkaProducer

import gkbroad
from tests.helpers.kafka_helpers import committed_offsets, end_offsets
from tests.helpers.pipeline_support import kafka_pipeline
from tests.helpers.support import start_module, wait_until

ORDERING_MEMBER = "tests.helpers.ordering_member"
PARTITIONS = 4
KEYS = 1000
RECORDS = 4000


def produce_keyed(bootstrap_servers: str, topic: str, count: int, keys: int) -> dict[bytes, list[int]]:
    """Records with key b"key-<i % keys>" and value b"<i>"; returns {key: [i, ...]} in send order,
    which is the offset order within the key's partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, max_in_flight_requests_per_connection=1)
    sent = defaultdict(list)
    try:
        for i in range(count):
            key = b"key-%d" % (i % keys)
            producer.send(topic, key=key, value=b"%d" % i)
            sent[key].append(i)
        producer.flush()
    finally:
        producer.close()
    return dict(sent)


class Observed:
    """What the handlers saw: per key the values in handling order, per partition
    the offsets handled, and how many handlers of one partition overlapped."""

    def __init__(self):
        self.by_key = defaultdict(list)
        self.offsets = defaultdict(set)
        self.order = defaultdict(list)
        self.running = defaultdict(int)
        self.most_at_once = defaultdict(int)
        self.rng = random.Random(11)

    @property
    def count(self) -> int:
        return sum(len(offsets) for offsets in self.offsets.values())


class SleepyPipeline(gkbroad.Pipeline):
    def handle_message(self, processor, message, context: Observed):
        record = message.data
        context.running[record.partition] += 1
        context.most_at_once[record.partition] = max(
            context.most_at_once[record.partition], context.running[record.partition]
        )
        gevent.sleep(context.rng.random() * 0.003)
        context.running[record.partition] -= 1
        context.by_key[record.key].append(int(record.value))
        context.order[record.partition].append(record.offset)
        context.offsets[record.partition].add(record.offset)
        return message


def commits_behind_handling(bootstrap_servers: str, group: str, topic: str, handled: dict[int, set]) -> list[str]:
    """Partitions whose committed offset passes a record not handled yet (an early commit).

    The committed offsets are read first: anything committed then was handled
    before, so it is in `handled` when that is read afterwards.
    """
    committed = committed_offsets(bootstrap_servers, group, topic)
    problems = []
    for partition, offset in committed.items():
        missing = set(range(offset)) - handled.get(partition, set())
        if missing:
            problems.append(f"partition {partition} committed {offset} but {sorted(missing)[:5]} were not handled")
    return problems


@pytest.mark.parametrize(
    "client_library, ordering",
    [("kafka-python", "partition"), ("kafka-python", "key"), ("kafka-python", "none"), ("librdkafka", "key")],
)
def test_ordering_modes_keep_their_order_lose_nothing_and_never_commit_early(
    bootstrap_servers, cluster, client_library, ordering
):
    topic = cluster.topic(PARTITIONS, prefix=f"order-{ordering}")
    group = cluster.group_id(f"order-{ordering}")
    sent = produce_keyed(bootstrap_servers, topic, RECORDS, KEYS)
    ends = end_offsets(bootstrap_servers, topic, PARTITIONS)
    observed = Observed()
    pipeline = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=observed,
        processors=50,
        cls=SleepyPipeline,
        ordering=ordering,
        client_library=client_library,
    ).start()
    early = []

    def handled_all_checking_commits():
        early.extend(commits_behind_handling(bootstrap_servers, group, topic, observed.offsets))
        return observed.count >= RECORDS

    try:
        wait_until(handled_all_checking_commits, 120, "every record handled")
    finally:
        assert pipeline.stop(30)

    assert early == [], early
    assert {p: len(o) for p, o in observed.offsets.items()} == ends, "a record was lost or handled twice"
    assert committed_offsets(bootstrap_servers, group, topic) == ends
    in_offset_order = all(order == sorted(order) for order in observed.order.values())
    overlapped = max(observed.most_at_once.values())
    if ordering == "partition":
        assert in_offset_order and overlapped == 1
    else:
        assert overlapped > 1, "no two records of one partition ran at the same time"
        assert not in_offset_order, "every partition was handled in offset order"
    if ordering in ("partition", "key"):
        assert observed.by_key == sent, "a key's records were handled out of order"
    else:
        assert {k: sorted(v) for k, v in observed.by_key.items()} == sent


class OrderingMemberProcess:
    """ordering_member.py in its own process, appending "handled P OFFSET" lines to a file."""

    def __init__(self, bootstrap: str, topic: str, group: str, ordering: str, client_library: str, path):
        self.path = path
        self.process = start_module(ORDERING_MEMBER, bootstrap, topic, group, ordering, client_library, str(path))

    def handled(self) -> dict[int, set]:
        offsets = defaultdict(set)
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                words = line.split()
                if len(words) == 3 and words[0] == "handled":
                    offsets[int(words[1])].add(int(words[2]))
        return offsets

    def count(self) -> int:
        return sum(len(o) for o in self.handled().values())


@pytest.mark.long(seconds=30)
@pytest.mark.parametrize(
    "client_library, ordering",
    [("kafka-python", "partition"), ("kafka-python", "key"), ("kafka-python", "none"), ("librdkafka", "key")],
)
def test_sigkill_and_restart_lose_nothing_and_commit_nothing_unhandled(
    bootstrap_servers, cluster, tmp_path, client_library, ordering
):
    topic = cluster.topic(PARTITIONS, prefix=f"kill-{ordering}")
    group = cluster.group_id(f"kill-{ordering}")
    produce_keyed(bootstrap_servers, topic, RECORDS, KEYS)
    ends = end_offsets(bootstrap_servers, topic, PARTITIONS)
    first = OrderingMemberProcess(bootstrap_servers, topic, group, ordering, client_library, tmp_path / "first.log")
    try:
        wait_until(lambda: first.count() >= RECORDS // 3, 90, "the first process to handle a third of the records")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    before_restart = first.handled()
    assert commits_behind_handling(bootstrap_servers, group, topic, before_restart) == []
    assert sum(len(o) for o in before_restart.values()) < RECORDS, "the first process finished before the kill"
    restart_at = {p: committed_offsets(bootstrap_servers, group, topic).get(p, 0) for p in ends}
    assert sum(restart_at.values()) > 0, "the first process committed nothing while it ran"

    second = OrderingMemberProcess(bootstrap_servers, topic, group, ordering, client_library, tmp_path / "second.log")
    try:
        wait_until(
            lambda: second.count() >= sum(ends[p] - restart_at[p] for p in ends),
            120,
            "the second process to handle everything from the committed offsets on",
        )
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(60) == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()
    # It started exactly at the committed offsets, below which the first had handled everything:
    # nothing lost, and what was handled twice is what the first had in flight when it was killed.
    assert second.handled() == {p: set(range(restart_at[p], ends[p])) for p in ends if restart_at[p] < ends[p]}
    assert committed_offsets(bootstrap_servers, group, topic) == ends
