"""ConsumerGroup's logic over the in-memory client (tests/helpers/fake_kafka.py):
pull/ack/commit, drain on revoke, flush on stop, supervision. The same flows
run against the real broker in tests/integration/test_consumer_group.py."""

import logging
import time

import gevent
import pytest

from gkbroad.kafka.client import PositionsLost, TopicPartition
from gkbroad.kafka.group import poller
from gkbroad.kafka.producer import Producer
from tests.helpers.fake_kafka import FakeConsumerClient, make_group, pull_all
from tests.helpers.group_support import CallbackRecordingGroup
from tests.helpers.support import wait_until

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture
def started():
    groups = []

    def start(logs, **options):
        client = FakeConsumerClient(logs)
        group = make_group(client, ["t"], cls=CallbackRecordingGroup, **options)
        group.start()
        groups.append(group)
        wait_until(lambda: client.connected, 5, "the fake client to connect")
        return group, client

    yield start
    for group in groups:
        group.stop(1)


def test_pulled_records_come_in_order_and_acks_commit_the_contiguous_prefix(started):
    group, client = started({("t", 0): 30, ("t", 1): 30})
    client.assign(("t", 0), ("t", 1))
    epoch, offsets = pull_all(group, 0, 30)
    assert offsets == list(range(30))
    group.ack([("t", 0, o, epoch) for o in range(10, 30)])
    gevent.sleep(0.1)
    assert T0 not in client.committed  # offsets 0..9 are missing
    group.ack([("t", 0, o, epoch) for o in range(10)])
    wait_until(lambda: client.committed.get(T0) == 30, 5, "the commit of 0..29")
    assert group.stats()["partitions"][("t", 0)]["committed"] == 30


def test_a_revocation_waits_for_the_delivered_records_then_commits_and_notifies(started):
    group, client = started({("t", 0): 20}, drain_timeout=10000)
    client.assign(("t", 0))
    epoch, offsets = pull_all(group, 0, 20)
    revocation = client.revoke(("t", 0))
    gevent.sleep(0.3)
    assert not revocation.dead and group.reasons() == [("start", 0)]  # still draining
    assert group.assigned_partitions() == []  # no more pulls...
    assert group.is_current("t", 0, epoch)  # ...but what was pulled is still to be handled
    group.ack([("t", 0, o, epoch) for o in offsets])
    revocation.join(5)
    assert revocation.dead
    assert not group.is_current("t", 0, epoch)
    assert client.committed[T0] == 20
    assert group.reasons() == [("start", 0), ("revoked", 0)]


def test_a_drain_that_times_out_commits_only_what_was_acknowledged(started):
    group, client = started({("t", 0): 20}, drain_timeout=300)
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 20)
    group.ack([("t", 0, o, epoch) for o in range(5)])
    client.revoke(("t", 0)).join(5)
    assert client.committed[T0] == 5
    group.ack([("t", 0, o, epoch) for o in range(5, 20)])  # too late: another epoch owns it
    gevent.sleep(0.1)
    assert client.committed[T0] == 5


def test_lost_partitions_commit_nothing_and_old_acks_are_ignored(started):
    group, client = started({("t", 0): 10})
    client.assign(("t", 0))
    epoch, offsets = pull_all(group, 0, 10)
    client.lose(("t", 0))
    client.assign(("t", 0))
    group.ack([("t", 0, o, epoch) for o in offsets])
    gevent.sleep(0.1)
    assert client.committed == {}
    assert group.reasons() == [("start", 0), ("lost", 0), ("start", 0)]
    new_epoch, again = pull_all(group, 0, 10)  # nothing was committed: all again
    assert (new_epoch, again) == (2, list(range(10)))


def test_stop_flushes_what_is_acknowledged_meanwhile_and_reports_a_clean_stop(started):
    group, client = started({("t", 0): 10, ("t", 1): 10})
    client.assign(("t", 0), ("t", 1))
    e0, o0 = pull_all(group, 0, 10)
    e1, o1 = pull_all(group, 1, 10)
    late = gevent.spawn_later(0.3, group.ack, [("t", 0, o, e0) for o in o0] + [("t", 1, o, e1) for o in o1])
    assert group.stop(5) is True
    assert late.dead
    assert client.committed == {T0: 10, T1: 10}
    assert sorted(group.reasons()[2:]) == [("shutdown", 0), ("shutdown", 1)]
    assert client.closed


def test_stop_returns_false_within_its_budget_when_acknowledged_offsets_cannot_be_committed(started, caplog):
    group, client = started({("t", 0): 10})
    client.assign(("t", 0))
    epoch, offsets = pull_all(group, 0, 10)
    client.refuse_commits = True
    group.ack([("t", 0, o, epoch) for o in offsets[:6]])
    begun = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gkbroad.kafka"):
        assert group.stop(1.5) is False
    assert time.monotonic() - begun < 1.5 + 1.5
    assert T0 not in client.committed
    assert "6 acknowledged record(s) could not be committed" in caplog.text


def test_stop_abandons_the_client_when_the_budget_runs_out(started):
    group, client = started({("t", 0): 10}, drain_timeout=60000)
    client.assign(("t", 0))
    epoch, offsets = pull_all(group, 0, 10)
    group.ack([("t", 0, o, epoch) for o in offsets])
    wait_until(lambda: client.committed.get(T0) == 10, 5, "the commit")
    client.close_delay = 30
    begun = time.monotonic()
    assert group.stop(1.0) is False
    assert time.monotonic() - begun < 1.0 + 1.5
    assert client.abandoned


def test_is_current_follows_the_assignment(started):
    group, client = started({("t", 0): 1})
    assert not group.is_current("t", 0, 1)
    client.assign(("t", 0))
    assert group.is_current("t", 0, 1)
    client.lose(("t", 0))
    client.assign(("t", 0))
    assert not group.is_current("t", 0, 1) and group.is_current("t", 0, 2)


def test_stats_say_how_long_ago_the_loop_polled_and_the_rebalance_timeout(started):
    group, client = started({("t", 0): 1}, rebalance_timeout_ms=45000)
    client.assign(("t", 0))
    wait_until(lambda: group.stats()["last_poll_age"] is not None, 5, "a poll")
    stats = group.stats()
    assert 0 <= stats["last_poll_age"] < 5
    assert stats["rebalance_timeout"] == 45.0


def _break_the_poll_loop(group, client):
    def paused():
        raise RuntimeError("a bug")

    client.paused = paused  # the poll loop's own code fails, not the poll
    group.greenlets[0].join(5)


def _kill_a_committer(group, client):
    group.greenlets[1].kill(RuntimeError("a bug"), block=True)


@pytest.mark.parametrize("breaking", [_break_the_poll_loop, _kill_a_committer], ids=["poll loop", "committer"])
def test_a_dying_greenlet_is_reported_once(started, breaking):
    group, client = started({("t", 0): 1})
    reports = []
    group.supervise(reports.append)
    breaking(group, client)
    group.greenlets[-1].kill(RuntimeError("another bug"), block=True)
    gevent.sleep(0)
    assert len(reports) == 1
    assert "died" in reports[0] and "a bug" in reports[0]
    assert group.stats()["failure"] == reports[0]
    assert group.stop(2) is False


def test_a_refused_configuration_is_reported():
    client = FakeConsumerClient({("t", 0): 1}, refuse_configuration=True)
    group = make_group(client, ["t"])
    reports = []
    group.supervise(reports.append)
    group.start()
    wait_until(lambda: reports, 5, "the report")
    assert reports == ["kafka-python refused the configuration: fake: no such setting"]
    assert group.stop(1) is False


def _gkbroad_lines(caplog, level, text):
    return [r for r in caplog.records if r.name.startswith("gkbroad") and r.levelno == level and text in r.getMessage()]


def test_a_missing_topic_is_named_once_per_interval_until_it_appears(started, caplog, monkeypatch):
    monkeypatch.setattr(poller, "_MISSING_TOPIC_AFTER", 0.0)
    monkeypatch.setattr(poller, "_WATCH_EVERY", 0.02)
    monkeypatch.setattr(poller, "WARN_EVERY", 0.4)
    caplog.set_level(logging.INFO, logger="gkbroad")
    group, client = started({("t", 0): 1})
    client.missing = ["t"]
    gevent.sleep(1.0)
    warnings = _gkbroad_lines(caplog, logging.WARNING, "subscribed topic(s) t do not exist")
    assert 2 <= len(warnings) <= 5  # every 0.4 s, not every poll (10 per second)
    client.missing = []
    wait_until(lambda: _gkbroad_lines(caplog, logging.INFO, "topics exist now"), 3, "the all-clear")
    gevent.sleep(0.5)
    assert len(_gkbroad_lines(caplog, logging.WARNING, "do not exist")) == len(warnings)
    assert len(_gkbroad_lines(caplog, logging.INFO, "topics exist now")) == 1


def test_lost_brokers_are_reported_once_per_interval_and_their_return_once(started, caplog, monkeypatch):
    monkeypatch.setattr(poller, "_UNREACHABLE_AFTER", 0.0)
    monkeypatch.setattr(poller, "_WATCH_EVERY", 0.02)
    monkeypatch.setattr(poller, "WARN_EVERY", 0.4)
    caplog.set_level(logging.INFO, logger="gkbroad")
    group, client = started({("t", 0): 1})
    client.unreachable = True
    gevent.sleep(1.0)
    warnings = _gkbroad_lines(caplog, logging.WARNING, "cannot reach the Kafka brokers at fake:9092")
    assert 2 <= len(warnings) <= 5
    client.unreachable = False
    wait_until(lambda: _gkbroad_lines(caplog, logging.INFO, "reachable again"), 3, "the all-clear")
    gevent.sleep(0.5)
    assert len(_gkbroad_lines(caplog, logging.INFO, "reachable again")) == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("fake: broker gone"),
        # A position problem of a partition this member does not hold: nothing to seek.
        PositionsLost({TopicPartition("t", 9): None}, LookupError("fake: no offset"), "no offset"),
    ],
    ids=["poll raises", "nothing to reset"],
)
def test_a_failing_poll_waits_with_backoff_instead_of_spinning(started, error):
    group, client = started({("t", 0): 1})
    client.assign(("t", 0))
    client.poll_error = error
    before = client.polls
    gevent.sleep(1.0)
    assert client.polls - before <= 6  # 0.1 + 0.2 + 0.4 s ... of backoff, not thousands of calls
    assert not group.greenlets[0].dead


def test_the_kafka_producer_calls_messages_of_a_given_up_partition_stale(started):
    group, client = started({("t", 0): 5}, drain_timeout=200)
    client.assign(("t", 0))
    producer = Producer(
        {"group": group, "message_format": "record", "receive_interval": 100, "topics": []},
        index=0,
        count=1,
    )
    wait_until(lambda: group.stats()["partitions"][("t", 0)]["buffered"] == 5, 5, "the records")
    data = [message.acknowledger.data for message in producer.receive(5)]
    check = producer.stale_check()  # what the processors call per message: the same answers in one call
    assert len(data) == 5 and not any(producer.is_stale(d) or check(d) for d in data)
    client.revoke(("t", 0)).join(5)  # the drain times out: nothing was acknowledged
    assert all(producer.is_stale(d) and check(d) for d in data)


def test_a_second_stop_waits_for_the_first_and_returns_its_result(started):
    group, client = started({("t", 0): 3})
    client.assign(("t", 0))
    epoch, offsets = pull_all(group, 0, 3)
    gevent.spawn_later(0.3, group.ack, [("t", 0, o, epoch) for o in offsets])
    first = gevent.spawn(group.stop, 5)
    gevent.sleep(0.05)
    assert group.stop(5) is True
    assert first.get(timeout=1) is True
    assert client.committed[T0] == 3


def test_a_failing_poll_does_not_spin_during_the_stop_either(started):
    group, client = started({("t", 0): 3})
    client.assign(("t", 0))
    pull_all(group, 0, 3)  # never acknowledged: the stop drains until its budget ends
    client.poll_error = ConnectionError("fake: broker gone")
    before = client.polls
    assert group.stop(1.0) is True  # nothing acknowledged, nothing lost
    assert client.polls - before <= 8


def test_partitions_without_a_committed_offset_are_named_in_one_info_line_per_policy(started, caplog):
    caplog.set_level(logging.INFO, logger="gkbroad")
    group, client = started({("t", 0): 3, ("t", 1): 3, ("t", 2): 3})
    client.assign(("t", 0), ("t", 1), ("t", 2))
    sought = []

    def seek_to_beginning(tp):  # the partition has a position now: the next poll succeeds
        sought.append(tp)
        client.poll_error = None

    client.seek_to_beginning = seek_to_beginning
    targets = dict.fromkeys([T0, T1, TopicPartition("t", 2)])
    client.poll_error = PositionsLost(targets, LookupError("fake"), "no offset committed by the group")
    wait_until(lambda: "starting from the earliest offset" in caplog.text, 5, "the line")
    assert sorted(sought) == sorted(targets)
    lines = _gkbroad_lines(caplog, logging.INFO, "starting from the earliest offset")
    assert lines[0].getMessage() == (
        "group unit-group: t:0, t:1, t:2: no offset committed by the group; starting from the earliest offset"
    )


def test_a_pull_that_empties_a_full_buffer_to_half_wakes_the_poller_at_once(started, monkeypatch):
    """With every buffer full, the poller waits for room rather than in poll(): here a poll would wait
    10 s, and the drained buffer is refilled long before that."""
    group, client = started({("t", 0): 200}, default_topic_config={"max_buffer_records": 40})
    client.assign(("t", 0))

    def buffered():
        return group.stats()["partitions"][("t", 0)]["buffered"]

    wait_until(lambda: buffered() > 30 and group.stats()["partitions"][("t", 0)]["paused"], 5, "a full buffer")
    monkeypatch.setattr(poller, "_POLL_TIMEOUT_MS", 10_000)
    gevent.sleep(0.3)  # the poller is waiting now, with the long timeout
    group.pull("t", 0, buffered() - 15)  # leaves 15 of 40: room to resume
    wait_until(lambda: buffered() > 15, 3, "the buffer refilled before any poll timeout")
    monkeypatch.undo()
    group.pull("t", 0, buffered())  # room again: the poller leaves its long wait for the usual ones
