"""ConsumerGroup against the real broker, without the pipeline engine.

The tests drive ``pull``/``ack`` themselves from greenlets, the way producer
stages do, and read the outcome back from Kafka with independent clients.
"""

import os
import subprocess
import sys
import time

import gevent
import pytest
from gevent.monkey import get_original
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from gkbroad.kafka.client.fetcher_fix import release_exhausted_batch
from gkbroad.testing.broker import LocalBroker
from tests.helpers.group_support import CallbackRecordingGroup, Consumer, build_group, make_group
from tests.helpers.kafka_helpers import Cluster, create_topic, partition_count
from tests.helpers.kafka_options import RESTART_SESSION_TIMEOUT_MS, producer_options, quick_client
from tests.helpers.support import free_port, wait_until


def test_pulls_every_record_in_order_and_commits_end_offsets_on_stop(client_library, cluster, report):
    topic = cluster.topic(partitions=3)
    written = cluster.produce(topic, 600)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id, client_library=client_library)
    group.start()
    try:
        consumer = Consumer(group)
        consumer.run_until(600, timeout=60)
    finally:
        begun = time.monotonic()
        clean = group.stop(timeout=30)
        report(f"ConsumerGroup.stop(timeout=30) with the broker up: {time.monotonic() - begun:.1f}s, returned {clean}")
    assert clean is True
    for partition, values in written.items():
        assert consumer.seen[partition] == list(range(len(values)))
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 3)


def test_commits_only_the_contiguous_acknowledged_prefix(client_library, cluster):
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 10)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id, client_library=client_library)
    group.start()
    try:
        consumer = Consumer(group, ack=False)
        consumer.run_until(10, timeout=60)
        held = {ack[2]: ack for ack in consumer.unacked}
        group.ack(held[o] for o in (9, 5, 6, 7, 8))
        gevent.sleep(1)
        assert cluster.committed(group_id, topic) == {}
        group.ack(held[o] for o in (2, 0, 1))
        wait_until(lambda: cluster.committed(group_id, topic) == {0: 3}, 60, "commit of 0..2", interval=0.2)
        group.ack(held[o] for o in (4, 3))
        wait_until(lambda: cluster.committed(group_id, topic) == {0: 10}, 60, "commit of 0..9", interval=0.2)
        assert group.stats()["partitions"][(topic, 0)]["committed"] == 10
    finally:
        group.stop(timeout=30)


def test_bounded_buffers_pause_and_resume_without_losing_or_sticking(client_library, cluster):
    topic = cluster.topic(partitions=2)
    cluster.produce(topic, 2000)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id, topic_config={"max_buffer_records": 40}, client_library=client_library)
    group.start()
    peaks, paused_seen = [0], set()

    def watch():
        while True:
            for tp, info in group.stats()["partitions"].items():
                peaks[0] = max(peaks[0], info["buffered"])
                if info["paused"]:
                    paused_seen.add(tp)
            gevent.sleep(0.005)

    watcher = gevent.spawn(watch)
    try:
        consumer = Consumer(group, batch=7)
        consumer.run_until(2000, timeout=90, pause=0.01)
    finally:
        watcher.kill()
        group.stop(timeout=30)
    assert peaks[0] <= 40
    assert paused_seen == {(topic, 0), (topic, 1)}
    assert sorted(consumer.seen) == [0, 1]
    for offsets in consumer.seen.values():
        assert offsets == list(range(len(offsets)))
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 2)


def test_a_partition_paused_when_revoked_is_read_again_when_assigned_back(client_library, cluster):
    """librdkafka keeps a partition's pause over its revocation: unless the client resumes it as it goes,
    it comes back paused while gkbroad's fresh state thinks it is not, and is never fetched again.

    With the range assignor (eager: the join revokes both partitions, the leave hands both back): with
    cooperative-sticky, on the bundled Tansu a kafka-python leader whose partitions were all paused kept
    rejoining generation 1 and never moved one (3 runs of 3)."""
    topic = cluster.topic(partitions=2)
    cluster.produce(topic, 400, partitions=2)
    group_id = cluster.group_id()
    options = {
        "topic_config": {"max_buffer_records": 20},
        "client_library": client_library,
        "partition_assignment_strategy": "range",
    }
    first = make_group(cluster, topic, group_id, **options)
    second = make_group(cluster, topic, group_id, **options)
    first.start()
    try:
        # Nobody pulls: both buffers fill and both partitions pause (librdkafka too, a poll batch held).
        paused = lambda: [info["paused"] for info in first.stats()["partitions"].values()]  # noqa: E731
        wait_until(lambda: paused() == [True, True], 60, "both partitions to pause")
        gevent.sleep(1)  # librdkafka holds a poll batch back, then pauses too (there are 180 more to fetch)
        second.start()
        wait_until(lambda: len(first.assigned_partitions()) == 1, 60, "a partition to move to the second member")
        second.stop(timeout=30)
        wait_until(lambda: len(first.assigned_partitions()) == 2, 60, "the partition to come back")
        consumer = Consumer(first, batch=7)
        consumer.run_until(400, timeout=60, pause=0.001)
    finally:
        gevent.joinall([gevent.spawn(first.stop, 30), gevent.spawn(second.stop, 30)])
    assert {p: offsets for p, offsets in consumer.seen.items()} == {p: list(range(200)) for p in range(2)}
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 2)


@pytest.mark.parametrize(
    ("client_library", "interval_ms", "session_ms"),
    [
        ("kafka-python", 2000, None),
        # librdkafka refuses a max.poll.interval.ms below session.timeout.ms.
        ("librdkafka", RESTART_SESSION_TIMEOUT_MS, RESTART_SESSION_TIMEOUT_MS),
    ],
)
def test_a_consumer_slower_than_max_poll_interval_keeps_the_membership(
    cluster, client_library, interval_ms, session_ms
):
    topic = cluster.topic(partitions=2)
    cluster.produce(topic, 40)
    group_id = cluster.group_id()
    group = make_group(
        cluster,
        topic,
        group_id,
        cls=CallbackRecordingGroup,
        rebalance_timeout_ms=interval_ms,
        drain_timeout=1500,
        client_library=client_library,
        **({"session_timeout_ms": session_ms} if session_ms else {}),
    )
    group.start()
    try:
        consumer = Consumer(group, batch=1)
        consumer.run_until(1, timeout=60)
        gevent.sleep(2.5 * interval_ms / 1000)  # the "handler" takes 2.5 times max_poll_interval_ms
        consumer.run_until(40, timeout=30)
        assert group.reasons() == [("start", 0), ("start", 1)]
        assert all(info["epoch"] == 1 for info in group.stats()["partitions"].values())
    finally:
        group.stop(timeout=30)
    assert sorted(group.reasons()) == [("shutdown", 0), ("shutdown", 1), ("start", 0), ("start", 1)]
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 2)


@pytest.mark.long
@pytest.mark.parametrize(
    "client_library, assignor",
    [("kafka-python", "cooperative-sticky"), ("kafka-python", "range"), ("librdkafka", "cooperative-sticky")],
)
def test_two_members_split_partitions_and_a_revocation_drains_first(client_library, cluster, assignor):
    topic = cluster.topic(partitions=4)
    cluster.produce(topic, 400, partitions=4)
    group_id = cluster.group_id()
    options = {
        "cls": CallbackRecordingGroup,
        "partition_assignment_strategy": assignor,
        "drain_timeout": 20000,
        "client_library": client_library,
    }
    first = make_group(cluster, topic, group_id, **options)
    first.start()
    second = make_group(cluster, topic, group_id, **options)
    try:
        held = Consumer(first, batch=10, ack=False)
        # first owns all four partitions and has records of each in flight
        held.pull_until(lambda: len([p for p in held.seen.values() if p]) == 4, 60, what="records of every partition")
        second.start()
        gevent.sleep(4)  # long enough for the second member to join if nothing waited
        assert second.assigned_partitions() == []
        released_at = time.monotonic()
        first.ack(held.unacked)
        wait_until(
            lambda: len(second.assigned_partitions()) == 2 and len(first.assigned_partitions()) == 2, 30, "a 2/2 split"
        )
        owned_first = set(first.assigned_partitions())
        owned_second = set(second.assigned_partitions())
        assert owned_first | owned_second == {(topic, p) for p in range(4)}
        moved = {p for _, p in owned_second}
        revoked = {(p, at) for kind, p, _, at in first.events if kind == "revoked"}
        started = {(p, at) for kind, p, _, at in second.events if kind == "start"}
        assert {p for p, _ in revoked} >= moved
        if assignor == "cooperative-sticky":
            assert {p for p, _ in revoked} == moved  # only the moved ones were revoked
        assert all(at >= released_at for _, at in revoked)
        assert all(start > max(at for _, at in revoked) for _, start in started)
        # The new owner starts where the drained member committed: nothing twice.
        committed = cluster.committed(group_id, topic)
        for p in moved:
            assert committed.get(p, 0) == len(held.seen.get(p, []))
        rest = [Consumer(first), Consumer(second)]
        deadline = time.monotonic() + 60
        while held.count + sum(c.count for c in rest) < 400:
            assert time.monotonic() < deadline, f"records missing: {first.stats()}"
            if not sum(c.pull_round() for c in rest):
                gevent.sleep(0.05)
    finally:
        gevent.joinall([gevent.spawn(first.stop, 30), gevent.spawn(second.stop, 30)])
    seen = {}
    for c in [held] + rest:
        for p, offsets in c.seen.items():
            seen.setdefault(p, []).extend(offsets)
    assert {p: sorted(offsets) for p, offsets in seen.items()} == {p: list(range(100)) for p in range(4)}
    assert cluster.committed(group_id, topic) == cluster.end_offsets(topic, 4)
    assert ("start", 0) in first.reasons() and all(
        kind in ("start", "revoked", "shutdown") for kind, _ in first.reasons() + second.reasons()
    )


def exceed_max_poll_interval(group, client_library: str, interval_ms: int) -> None:
    """Make the member lose its membership the way its client does when it was not polled in time."""
    if client_library == "kafka-python":
        # What kafka-python itself does when the member exceeded max_poll_interval_ms.
        group.consumer_client.kafka_consumer._coordinator.maybe_leave_group(reason="test: membership lost")
    else:
        # librdkafka heartbeats from its own threads, and leaves the group itself when consume() was not called
        # within max.poll.interval.ms: hold the hub (so the poll greenlet) past it.
        get_original("time", "sleep")(interval_ms / 1000 + 1.5)


@pytest.mark.parametrize("client_library", ["kafka-python", "librdkafka"])
def test_lost_membership_reports_lost_and_ignores_acks_of_the_old_epoch(cluster, client_library):
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 20)
    group_id = cluster.group_id()
    # librdkafka refuses a max.poll.interval.ms below session.timeout.ms.
    interval = {
        "rebalance_timeout_ms": RESTART_SESSION_TIMEOUT_MS,
        "session_timeout_ms": RESTART_SESSION_TIMEOUT_MS,
        "drain_timeout": 1500,
    }
    group = make_group(
        cluster,
        topic,
        group_id,
        cls=CallbackRecordingGroup,
        client_library=client_library,
        **(interval if client_library == "librdkafka" else {}),
    )
    rebalances = []
    group.report_rebalances(lambda *change: rebalances.append(change))  # what the metrics hooks see
    group.start()
    try:
        stale = Consumer(group, ack=False)
        stale.run_until(20, timeout=60)
        exceed_max_poll_interval(group, client_library, RESTART_SESSION_TIMEOUT_MS)
        wait_until(
            lambda: group.stats()["partitions"].get((topic, 0), {}).get("epoch") == 2, 30, "the partition to come back"
        )
        assert group.reasons() == [("start", 0), ("lost", 0), ("start", 0)]
        assert rebalances == [(topic, 0, "assigned"), (topic, 0, "lost"), (topic, 0, "assigned")]
        group.ack(stale.unacked)  # epoch 1: from before the loss
        gevent.sleep(1)
        assert cluster.committed(group_id, topic) == {}
        assert group.stats()["partitions"][(topic, 0)]["pending"] == 0
        fresh = Consumer(group)
        fresh.run_until(20, timeout=30)  # nothing was committed: all of it again
        assert fresh.seen[0] == list(range(20))
    finally:
        group.stop(timeout=30)
    assert cluster.committed(group_id, topic) == {0: 20}
    assert rebalances[-1] == (topic, 0, "shutdown")


def test_each_topic_starts_where_its_offset_reset_policy_says(client_library, cluster):
    early, late = cluster.topic(partitions=1), cluster.topic(partitions=1)
    cluster.produce(early, 5)
    for _ in range(3):
        # One record per batch: the bundled Tansu answers ListOffsets(latest)
        # with the last batch's base offset + 1.
        cluster.produce(late, 1)
    options = producer_options(
        cluster.bootstrap_servers, cluster.group_id(), [early, late], client_library=client_library
    )
    options["topics"][1]["offset_reset_policy"] = "latest"
    group = build_group(**options)
    group.start()
    try:
        consumer = Consumer(group)
        consumer.run_until(5, timeout=60)
        wait_until(
            lambda: group.stats()["partitions"].get((late, 0), {}).get("position") == 3,
            10,
            "the late topic to be positioned at its end",
        )
        cluster.produce(late, 2)
        consumer.run_until(7, timeout=30)
        by_topic = {}
        for topic, partition in [(early, 0), (late, 0)]:
            by_topic[topic] = group.stats()["partitions"][(topic, partition)]["position"]
    finally:
        group.stop(timeout=30)
    assert consumer.count == 7
    assert by_topic == {early: 5, late: 5}


def test_static_membership_joins_and_consumes(client_library, cluster):
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 10)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id, instance_id="member-a", client_library=client_library)
    group.start()
    try:
        Consumer(group).run_until(10, timeout=60)
    finally:
        group.stop(timeout=30)
    assert cluster.committed(group_id, topic) == {0: 10}


def test_kafka_python_pause_resume_bug_is_still_there_and_the_fix_unsticks_it(cluster):
    def resumed_partition_catches_up(fix):
        topic = cluster.topic(partitions=2)
        cluster.produce(topic, 200, partitions=2)
        consumer = KafkaConsumer(
            bootstrap_servers=cluster.bootstrap_servers, max_poll_records=10, auto_offset_reset="earliest"
        )
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        counts, paused = {0: 0, 1: 0}, None
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and min(counts.values()) < 100:
                if fix:
                    release_exhausted_batch(consumer)
                for tp, records in consumer.poll(timeout_ms=100).items():
                    counts[tp.partition] += len(records)
                    if paused is None:  # its batch was only partly returned
                        paused = tp
                        consumer.pause(tp)
                other = 1 - paused.partition if paused else None
                if paused and consumer.paused() and counts[other] == 100:
                    consumer.resume(paused)
        finally:
            consumer.close()
        return min(counts.values()) == 100

    # When this starts failing, kafka-python fixed the bug: drop fetcher_fix.
    assert not resumed_partition_catches_up(fix=False)
    assert resumed_partition_catches_up(fix=True)


@pytest.mark.parametrize(
    "program, expected",
    [
        ("from gkbroad.kafka.group.consumer_group import ConsumerGroup", "has not been applied"),
        (
            "import kafka\nfrom gevent import monkey\nmonkey.patch_all()\n"
            "from gkbroad.kafka.group.consumer_group import ConsumerGroup",
            "kafka was imported before",
        ),
    ],
)
def test_missing_or_late_monkey_patching_is_refused_with_the_fix(program, expected):
    program += (
        "\nfrom gkbroad.kafka.options import KafkaProducerOptions\n"
        "from gkbroad.config.validation import validate\n"
        "options = validate(KafkaProducerOptions, {'group_name': 'g', 'topics': [{'name': 't'}],\n"
        "                                          'client': {'bootstrap_servers': 'x:1'}})\n"
        "try:\n"
        "    ConsumerGroup.from_options(options)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "GKBROAD_GEVENT_PATCH"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.startswith("ConfigError"), result.stdout + result.stderr
    assert expected in result.stdout
    assert "monkey.patch_all()" in result.stdout


@pytest.mark.long
def test_waits_for_an_unreachable_broker_and_survives_losing_it(client_library, caplog):
    # A broker of its own: this test starts it late and kills it.
    broker = LocalBroker(port=free_port())
    cluster = Cluster(f"127.0.0.1:{broker.port}")
    options = producer_options(
        cluster.bootstrap_servers,
        cluster.group_id(),
        ["orders"],
        client=quick_client(cluster.bootstrap_servers, client_library),
        client_library=client_library,
    )
    group = build_group(**options)
    group.start()
    try:
        # kafka-python's bootstrap gives up after its 1 s timeout; librdkafka's member counts as unreachable
        # from the start, and the warning comes once that lasted 2 s.
        wait_until(lambda: "cannot reach the Kafka brokers" in caplog.text, 5, "the warning")
        broker.start()
        create_topic(cluster.bootstrap_servers, "orders", 1, exist_ok=True)  # the subscribed group may be first
        partitions = partition_count(cluster.bootstrap_servers, "orders")  # 4 when Tansu created it for the group
        cluster.produce("orders", 10)
        Consumer(group).run_until(10, timeout=60)
        broker.stop()
        gevent.sleep(3)
        assert all(not greenlet.dead for greenlet in group.greenlets)
        assert sorted(group.stats()["assigned"]) == [("orders", p) for p in range(partitions)]
    finally:
        broker.stop()
        group.stop(timeout=60)
    assert all(greenlet.dead for greenlet in group.greenlets)
