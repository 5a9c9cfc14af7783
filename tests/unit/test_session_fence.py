"""The session fence (gkbroad/kafka/group/session_fence.py) over the in-memory client: a member whose
coordinator stays silent gives its partitions up before the broker can, and takes new ones once it rejoins."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any

import gevent
import kafka.errors as Errors
import pytest
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.future import Future
from kafka.structs import TopicPartition

from gkbroad.kafka.client import session
from gkbroad.kafka.group.grouplog import GroupLog
from gkbroad.kafka.group.session_fence import fence_after, warn_on_slow_requests
from gkbroad.observability.status import unhealthy
from tests.helpers.fake_kafka import FakeConsumerClient, make_group, pull_all
from tests.helpers.group_support import CallbackRecordingGroup
from tests.helpers.support import wait_until

SESSION_MS = 6000


@pytest.fixture
def member():
    client = FakeConsumerClient({("t", 0): 100, ("t", 1): 100})
    group = make_group(
        client, ["t"], cls=CallbackRecordingGroup, session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000
    )
    group.start()
    wait_until(lambda: client.connected, 5, "the fake client to connect")
    client.assign(("t", 0), ("t", 1))
    yield group, client
    group.stop(2)


def test_the_fence_leaves_a_margin_below_the_session_timeout():
    assert fence_after(6.0) == 4.5
    assert fence_after(45.0) == pytest.approx(33.75)
    assert fence_after(2.0) == 1.0  # never sooner than half the session


def test_a_silent_coordinator_fences_every_partition_once_with_one_warning(member, caplog):
    group, client = member
    epoch, offsets = pull_all(group, 0, 10)
    with caplog.at_level(logging.WARNING, logger="gkbroad.kafka"):
        client.silence = fence_after(SESSION_MS / 1000) + 0.1
        wait_until(lambda: group.stats()["session_fenced"], 5, "the fence")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no answer from the group coordinator" in warnings[0], warnings
    assert "t:0, t:1" in warnings[0] and "10 unacknowledged" in warnings[0]
    assert client.memberships_forgotten == 1
    assert group.assigned_partitions() == [] and group.pull("t", 1, 10)[1] == []
    assert not group.is_current("t", 0, epoch)
    group.ack([("t", 0, offset, epoch) for offset in offsets])  # a handler that was running finishes
    gevent.sleep(0.3)  # time for the committers to act, if they would
    assert client.commit_requests == [], "what a fenced partition acknowledged must not be committed"
    assert sorted(e for e in group.reasons() if e[0] == "lost") == [("lost", 0), ("lost", 1)]


def test_health_says_the_member_is_fenced_until_it_rejoins(member):
    group, client = member
    client.silence = SESSION_MS / 1000
    wait_until(lambda: group.stats()["session_fenced"], 5, "the fence")

    class Pipeline:
        failure = None
        state = "running"
        services = [group]

    assert "cannot reach its group coordinator" in (unhealthy(Pipeline) or "")
    client.lose(("t", 0), ("t", 1))  # kafka-python's own word once the coordinator answers: nothing left to drop
    client.silence = 0.0  # rejoined: a stable member again
    client.assign(("t", 0), ("t", 1))
    wait_until(lambda: not group.stats()["session_fenced"], 5, "the member to count as rejoined")
    epoch, offsets = pull_all(group, 1, 5)
    assert epoch == 2 and offsets == [0, 1, 2, 3, 4]  # a new epoch, from the last commit (none here)


def test_a_joining_member_is_never_fenced(member):
    group, client = member
    client.silence = None  # JoinGroup/SyncGroup in flight: their own timeouts keep the session
    wait_until(lambda: client.polls > 5, 5, "a few polls")
    assert not group.stats()["session_fenced"] and len(group.assigned_partitions()) == 2


def test_a_request_timeout_at_or_above_the_fence_point_is_warned_about(caplog):
    log = GroupLog(logging.getLogger("gkbroad.kafka.group.session_fence"), "g")
    with caplog.at_level(logging.WARNING, logger="gkbroad.kafka"):
        assert warn_on_slow_requests({"session_timeout_ms": 6000, "request_timeout_ms": 4500}, log)
        assert not warn_on_slow_requests({"session_timeout_ms": 6000, "request_timeout_ms": 3000}, log)
        assert not warn_on_slow_requests({}, log)  # kafka-python's defaults: 30 s below 45 s less the margin
    assert len(caplog.records) == 1 and "set request_timeout_ms below 4500" in caplog.records[0].getMessage()


def _owned(assignor: CooperativeStickyAssignor) -> list:
    return [(t.topic, list(t.partitions)) for t in assignor.metadata(["t"]).owned_partitions]


def test_forgetting_owned_partitions_stops_the_cooperative_assignor_claiming_them():
    class Consumer:  # what forget_owned_partitions reads: the coordinator's assignors
        class _coordinator:
            _assignors = {"cooperative-sticky": CooperativeStickyAssignor()}

    assignor = Consumer._coordinator._assignors["cooperative-sticky"]
    assignor.member_assignment = [TopicPartition("t", 0), TopicPartition("t", 3)]
    assert _owned(assignor) == [("t", [0, 3])]
    session.forget_owned_partitions(Consumer)  # type: ignore[arg-type]
    assert _owned(assignor) == []


def test_kafka_python_still_keeps_the_lost_assignment_in_its_assignor():
    """The upstream bug the workaround is for. When this fails, kafka-python resets
    the assignor on a loss itself and session.forget_owned_partitions may go."""
    lost_path = inspect.getsource(ConsumerCoordinator._on_join_prepare_async)
    assert "on_partitions_lost" in lost_path
    assert not re.search(r"member_assignment\s*=", inspect.getsource(ConsumerCoordinator))


class _Coordinator:
    """What commit_unless_lost uses of kafka-python's coordinator; each attempt gets the next answer."""

    config = {"retry_backoff_ms": 1}

    def __init__(self, *answers: BaseException | None):
        self.answers = list(answers)
        self.sent: list[dict] = []

    async def ensure_coordinator_ready_async(self, timeout_ms: int) -> bool:
        return True

    def _send_offset_commit_request(self, offsets: dict) -> Future:
        self.sent.append(offsets)
        answer = self.answers.pop(0)
        return Future().failure(answer) if answer is not None else Future().success(None)


class _Loop:
    """kafka-python's manager and net, as far as commit_unless_lost uses them."""

    def call_soon(self, function: Any, *args: Any) -> Any:
        return function(*args)

    async def wait_for(self, future: Future, timeout_ms: int) -> None:
        if future.failed():
            raise future.exception

    async def sleep(self, seconds: float) -> None:
        return None


def _commit(coordinator: _Coordinator, still_member: Any) -> Any:
    consumer = type("Consumer", (), {"_coordinator": coordinator, "_manager": _Loop(), "_net": _Loop()})()
    return asyncio.run(session.commit_unless_lost(consumer, {"tp": "offset"}, 5000, still_member))


def test_a_commit_retries_retriable_errors_while_the_membership_lasts():
    coordinator = _Coordinator(Errors.CoordinatorNotAvailableError(), None)
    _commit(coordinator, lambda: True)
    assert len(coordinator.sent) == 2


def test_a_commit_sends_nothing_once_the_membership_was_lost():
    """The retry after a loss would go out in the next generation, maybe behind the new owner's commit."""
    coordinator = _Coordinator(Errors.CoordinatorNotAvailableError(), None)
    member = iter([True, False])
    with pytest.raises(Errors.CommitFailedError):
        _commit(coordinator, lambda: next(member))
    assert len(coordinator.sent) == 1
    coordinator = _Coordinator(None)
    with pytest.raises(Errors.CommitFailedError):
        _commit(coordinator, lambda: False)
    assert coordinator.sent == []
