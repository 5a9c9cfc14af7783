"""Lifecycle edges against the real broker: a handler that stops its own pipeline, and no record
of a partition handled after the partition was given to another member."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict

import gevent
import pytest
from gevent.event import Event

import gkbroad
from gkbroad.kafka import ConsumerGroup, Producer
from tests.helpers.kafka_helpers import committed_offsets, create_topic, produce, unique_name
from tests.helpers.kafka_options import client_settings, producer_options
from tests.helpers.pipeline_support import kafka_pipeline
from tests.helpers.support import start_module, wait_until

MEMBER = "tests.helpers.group_member"


class Events:
    """What one in-process member did, in order: ("start"|"stop"|"handled", partition, ...)."""

    def __init__(self):
        self.log: list[tuple] = []

    def handled(self, partition: int | None = None) -> list[tuple[int, int]]:
        return [(e[1], e[2]) for e in self.log if e[0] == "handled" and partition in (None, e[1])]


def tracked_group(bootstrap_servers, events: Events, client_library: str) -> type[ConsumerGroup]:
    class Tracked(ConsumerGroup):
        client = client_settings(bootstrap_servers, client_library)

        def handle_consumer_start(self, topic, partition, group_name):
            events.log.append(("start", partition))

        def handle_consumer_stop(self, topic, partition, group_name, reason):
            events.log.append(("stop", partition, reason))

    return Tracked


STOP_AFTER = 300


def test_a_handler_that_calls_stop_ends_the_process_and_commits_what_was_acknowledged(
    bootstrap_servers, tmp_path, client_library, report
):
    topic = create_topic(bootstrap_servers, unique_name("selfstop"), 4)
    produce(bootstrap_servers, topic, 2000)
    group = unique_name("selfstop-group")
    log = tmp_path / "member.log"
    began = time.monotonic()
    member = start_module(
        MEMBER, bootstrap_servers, topic, group, str(log), "cooperative-sticky", client_library, str(STOP_AFTER)
    )
    try:
        code = member.wait(120)  # no signal: the handler's stop() must end the process
    finally:
        if member.poll() is None:
            member.kill()
    took = time.monotonic() - began
    lines = [line.split() for line in log.read_text().splitlines()]
    assert code == 0 and lines[-1] == ["exit", "clean"]
    handled = defaultdict(list)
    for line in lines:
        if line[0] == "handled":
            handled[int(line[1])].append(int(line[2]))
    assert sum(len(offsets) for offsets in handled.values()) >= STOP_AFTER
    assert all(offsets == list(range(len(offsets))) for offsets in handled.values())
    # every handled record was acknowledged and is covered by the commit, nothing more
    assert committed_offsets(bootstrap_servers, group, topic) == {p: len(o) for p, o in handled.items()}
    started = {line[1] for line in lines if line[0] == "start"}
    assert {line[1] for line in lines if line[:1] == ["stop"] and line[2] == "shutdown"} == started, (
        "the member did not leave the group for every partition it held"
    )
    report(
        f"stop() from a handler after {STOP_AFTER} records on {client_library}: "
        f"the member process exited 0 after {took:.1f}s"
    )


class BlocksFirstOfEachPartition(gkbroad.Pipeline):
    """The first record of each partition blocks until the test releases it, like a handler stuck
    on a slow call while a rebalance drains past drain_timeout."""

    def handle_message(self, processor, message, context):
        events, release = context
        record = message.data
        first = not events.handled(record.partition)
        events.log.append(("handled", record.partition, record.offset))
        if first:
            release.wait()
        return message


@pytest.mark.long
def test_no_record_of_a_revoked_partition_is_handled_after_a_drain_timeout(
    bootstrap_servers, tmp_path, client_library, report
):
    partitions = 4
    topic = create_topic(bootstrap_servers, unique_name("stale"), partitions)
    produce(bootstrap_servers, topic, 400, partitions=partitions)
    group = unique_name("stale-group")
    events, release = Events(), Event()
    pipeline = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=(events, release),
        cls=BlocksFirstOfEachPartition,
        consumer_group=tracked_group(bootstrap_servers, events, client_library),
        processors=16,
        drain_timeout=2000,
        client_library=client_library,
    )
    pipeline.start()
    other_log = tmp_path / "other.log"
    other = None
    try:
        # Blocked calls, with every credit taken by the records queued behind them.
        wait_until(lambda: events.handled() and pipeline.in_flight == 16 * 10, 60, "the pipeline full of records")
        other = start_module(
            MEMBER, bootstrap_servers, topic, group, str(other_log), "cooperative-sticky", client_library
        )
        wait_until(lambda: any(e[0] == "stop" and e[2] != "shutdown" for e in events.log), 90, "a partition revoked")
        revoked = {e[1] for e in events.log if e[0] == "stop" and e[2] != "shutdown"}
        wait_until(
            lambda: (
                other_log.exists()
                and {int(line.split()[1]) for line in other_log.read_text().splitlines() if line.startswith("handled")}
                >= revoked
            ),
            60,
            "the new owner to handle the revoked partitions",
        )
        release.set()
        gevent.sleep(2.0)  # what was queued behind the blocked calls gets its chance to (wrongly) run
    finally:
        release.set()
        assert pipeline.stop(timeout=30) is not None
        if other is not None:
            other.send_signal(signal.SIGTERM)
            try:
                other.wait(45)
            except subprocess.TimeoutExpired:
                other.kill()
    # A record is late when its handle_message began after its partition was released and before
    # the partition came back to this member (a new assignment pulls it afresh).
    late, away = [], set()
    for event in events.log:
        if event[0] == "stop" and event[2] != "shutdown":
            away.add(event[1])
        elif event[0] == "start":
            away.discard(event[1])
        elif event[0] == "handled" and event[1] in away:
            late.append(event)
    assert late == [], f"records of revoked partitions handled after their release: {late[:10]}"
    report(
        f"stale filtering on {client_library}: partitions {sorted(revoked)} revoked after a drain timeout, "
        "none handled after"
    )


class SlowHandler(gkbroad.Pipeline):
    def handle_message(self, processor, message, context: Events):
        gevent.sleep(0.05)
        context.log.append(("handled", message.data.partition, message.data.offset))
        return message


@pytest.mark.long
def test_records_in_flight_when_a_rebalance_drains_are_still_handled(bootstrap_servers, tmp_path, client_library):
    """The counterpart of the stale check: while a revoked partition drains (within drain_timeout),
    its records in flight are current and must be handled, not skipped; every record is handled by
    one member or the other and everything is committed."""
    partitions = 4
    topic = create_topic(bootstrap_servers, unique_name("drain"), partitions)
    produce(bootstrap_servers, topic, 1000, partitions=partitions)
    group = unique_name("drain-group")
    events = Events()
    pipeline = kafka_pipeline(
        bootstrap_servers,
        group,
        [topic],
        context=events,
        cls=SlowHandler,
        consumer_group=tracked_group(bootstrap_servers, events, client_library),
        processors=16,
        drain_timeout=10000,
        client_library=client_library,
    )
    pipeline.start()
    other_log = tmp_path / "other.log"
    other = None

    def other_handled():
        if not other_log.exists():
            return set()
        lines = [line.split() for line in other_log.read_text().splitlines()]
        return {(int(line[1]), int(line[2])) for line in lines if line[0] == "handled"}

    everything = {(p, o) for p in range(partitions) for o in range(250)}
    try:
        wait_until(lambda: pipeline.in_flight > 50, 60, "records in flight")
        other = start_module(
            MEMBER, bootstrap_servers, topic, group, str(other_log), "cooperative-sticky", client_library
        )
        wait_until(lambda: any(e[0] == "stop" for e in events.log), 90, "a partition revoked")
        wait_until(lambda: set(events.handled()) | other_handled() >= everything, 90, "every record handled")
    finally:
        clean = pipeline.stop(timeout=30)
        if other is not None:
            other.send_signal(signal.SIGTERM)
            try:
                other.wait(45)
            except subprocess.TimeoutExpired:
                other.kill()
    revoked = [e for e in events.log if e[0] == "stop" and e[2] == "revoked"]
    assert revoked, "no partition was revoked from the first member: the test did not exercise a drain"
    assert clean
    assert committed_offsets(bootstrap_servers, group, topic) == dict.fromkeys(range(partitions), 250)


class BrokenFromOffset50(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        if message.data.offset >= 50:
            raise ValueError("cannot parse the record")
        return message


def test_a_tripped_failure_policy_stops_the_pipeline_before_committing_the_failures(bootstrap_servers, client_library):
    topic = create_topic(bootstrap_servers, unique_name("breaker"), 1)
    produce(bootstrap_servers, topic, 200)
    group = unique_name("breaker-group")
    pipeline = BrokenFromOffset50(
        name="breaker",
        producer={
            "module": (
                Producer,
                # the group's stop waits drain_timeout for acks of the records the breaker held back
                producer_options(bootstrap_servers, group, [topic], drain_timeout=2000, client_library=client_library),
            )
        },
        processors={"default": {"concurrency": 4, "max_demand": 10}},
        on_failure={"max_consecutive": 5},
    )

    assert gevent.spawn(pipeline.run).get(timeout=90) is False
    assert pipeline.failure.startswith("on_failure: 5 consecutive failures")
    assert committed_offsets(bootstrap_servers, group, topic) == {0: 50}, "committed past the first failure"
