"""Commit spacing (commit_interval) and commit reporting (report_commits / after_commit).

GroupState by value for the rule, then the ConsumerGroup over the in-memory
client (tests/helpers/fake_kafka.py) for what the committer sends. Intervals are
long (a minute) so that no test depends on how fast the machine is.
"""

import socket
from collections import namedtuple

import gevent
import statsd

from gkbroad.kafka.client import TopicPartition
from gkbroad.kafka.group.offset_tracker import consecutive_runs
from gkbroad.kafka.group.state import GroupState
from gkbroad.observability import StatsdSink
from gkbroad.observability.hooks import Hooks
from tests.helpers.fake_kafka import FakeConsumerClient, make_group
from tests.helpers.support import wait_until

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset")
A, B = TP("t", 0), TP("t", 1)
T0 = TopicPartition("t", 0)


def spaced_state(interval):
    state = GroupState({"t": 100}, 10, commit_interval=interval)
    state.assign([A, B])
    epochs = {}
    for tp in (A, B):
        state.buffer({tp: [Rec(o) for o in range(10)]})
        epochs[tp], _ = state.pull(tp, 10)
    return state, epochs


def test_consecutive_runs_join_only_following_offsets_of_one_partition_and_epoch():
    acks = [
        ("t", 0, 0, 1),
        ("t", 0, 1, 1),
        ("t", 0, 2, 1),
        ("t", 0, 4, 1),  # gap
        ("t", 1, 5, 1),  # other partition
        ("t", 1, 6, 2),  # other epoch
        ("u", 1, 7, 2),  # other topic
        ("u", 1, 8, 2),
    ]
    assert list(consecutive_runs(acks)) == [
        ("t", 0, 1, 0, 2),
        ("t", 0, 1, 4, 4),
        ("t", 1, 1, 5, 5),
        ("t", 1, 2, 6, 6),
        ("u", 1, 2, 7, 8),
    ]
    assert list(consecutive_runs([])) == []


def test_a_partition_is_not_committed_again_within_the_interval():
    state, epochs = spaced_state(interval=5.0)
    state.ack([("t", 0, o, epochs[A]) for o in range(3)])
    first = state.take_commits(100.0)
    assert first.offsets == {A: 2}
    state.commit_done(first, succeeded=True)
    state.ack([("t", 0, o, epochs[A]) for o in range(3, 6)])
    state.ack([("t", 1, o, epochs[B]) for o in range(4)])
    # A was committed 1 s ago: only B, never committed, goes now.
    assert state.take_commits(101.0).offsets == {B: 3}
    assert state.commits_wanted()
    assert state.next_commit_in(101.0) == 4.0
    assert not state.take_commits(104.9)
    state.ack([("t", 0, o, epochs[A]) for o in range(6, 8)])
    # The acks that arrived meanwhile go in one commit with the latest offset.
    assert state.take_commits(105.0).offsets == {A: 7}


def test_nothing_waits_for_the_interval_when_nothing_is_dirty():
    state, epochs = spaced_state(interval=5.0)
    assert state.next_commit_in(0.0) is None
    state.ack([("t", 0, 0, epochs[A])])
    request = state.take_commits(10.0)
    assert state.next_commit_in(10.0) is None  # in flight: its end wakes the committer
    state.commit_done(request, succeeded=True)
    assert state.next_commit_in(10.0) is None


def test_a_closing_group_and_final_commits_ignore_the_interval():
    state, epochs = spaced_state(interval=60.0)
    state.ack([("t", 0, 0, epochs[A]), ("t", 1, 0, epochs[B])])
    state.commit_done(state.take_commits(0.0), succeeded=True)
    state.ack([("t", 0, 1, epochs[A]), ("t", 1, 1, epochs[B])])
    assert not state.take_commits(1.0)
    state.begin_release([B])
    assert state.take_final_commits([B]).offsets == {B: 1}
    state.drop_buffers()  # the group stops
    assert state.next_commit_in(1.0) == 0.0
    assert state.take_commits(1.0).offsets == {A: 1}


class CommitLog:
    """A hook that records after_commit calls."""

    def __init__(self):
        self.commits = []

    def after_commit(self, duration, partitions):
        self.commits.append((duration, partitions))


def started_group(**options):
    client = FakeConsumerClient({("t", 0): 50})
    group = make_group(client, ["t"], **options)
    hooks, log = Hooks(), CommitLog()
    hooks.add(log)
    group.report_commits(hooks.committed)
    group.start()
    wait_until(lambda: client.connected, 5, "the fake client to connect")
    client.assign(("t", 0))
    epoch, records = None, []
    wait_until(lambda: group.assigned_partitions(), 5, "the assignment")
    while len(records) < 50:
        epoch, more = group.pull("t", 0, 50 - len(records))
        records += more
        if not more:
            group.wait_for_records(0.05)
    return group, client, log, epoch


def test_acks_within_the_interval_are_coalesced_and_the_stop_commits_them_at_once():
    group, client, log, epoch = started_group(commit_interval=60_000)
    client.commit_delay = 0.02
    try:
        group.ack([("t", 0, o, epoch) for o in range(10)])
        wait_until(lambda: client.committed.get(T0) == 10, 5, "the first commit")
        for start in range(10, 40, 10):
            group.ack([("t", 0, o, epoch) for o in range(start, start + 10)])
            gevent.sleep(0.05)
        assert client.committed[T0] == 10  # held back by the interval
        assert len(client.commit_requests) == 1
        group.ack([("t", 0, o, epoch) for o in range(40, 50)])
    finally:
        assert group.stop(10)
    assert client.committed[T0] == 50  # the stop did not wait a minute
    assert client.commit_requests[1:] == [{T0: 49}]
    assert [partitions for _, partitions in log.commits] == [[("t", 0)], [("t", 0)]]
    assert all(duration >= 0.01 for duration, _ in log.commits)  # timed from request to answer


def test_with_no_interval_every_ack_round_is_committed():
    group, client, log, epoch = started_group(commit_interval=0)
    try:
        for start in range(0, 50, 10):
            group.ack([("t", 0, o, epoch) for o in range(start, start + 10)])
            wait_until(lambda end=start + 10: client.committed.get(T0) == end, 5, f"the commit up to {start + 10}")
        assert len(client.commit_requests) == 5
        assert len(log.commits) == 5
    finally:
        group.stop(5)


def test_statsd_sink_sends_each_commit_as_a_commit_timer():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2)
    sink = StatsdSink("orders", "127.0.0.1", listener.getsockname()[1], "app", 10)
    sink.client = statsd.StatsClient("127.0.0.1", listener.getsockname()[1], prefix=sink.prefix)
    sink.after_commit(0.0125, [("t", 0), ("t", 1)])
    sink.flush()
    lines = listener.recv(65536).decode().splitlines()
    listener.close()
    assert lines == ["app.orders.commit:12.500000|ms"]
