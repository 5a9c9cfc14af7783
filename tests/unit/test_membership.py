"""The member's place in the group: a stall out of a stable generation is warned
about, remedied where the broker names a departed leader (a stand-in JoinGroup),
and shown in stats for /healthz;
an unanswered bootstrap is warned about before kafka-python gives up on it."""

from __future__ import annotations

import logging

import gevent
import pytest

from gkbroad.kafka.group import poller
from tests.helpers.fake_kafka import FakeConsumerClient, make_group
from tests.helpers.support import wait_until


@pytest.fixture
def fast_watch(monkeypatch, caplog):
    monkeypatch.setattr(poller, "_WATCH_EVERY", 0.02)
    monkeypatch.setattr(poller, "WARN_EVERY", 0.3)
    caplog.set_level(logging.INFO, logger="gkbroad")
    groups = []
    yield groups
    for group in groups:
        group.stop(1)


def gkbroad_messages(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name.startswith("gkbroad") and r.levelno == level]


def test_a_refused_sync_sends_a_stand_in_join_for_the_named_leader_once_and_the_stall_is_warned_about(
    fast_watch, caplog
):
    client = FakeConsumerClient({("t", 0): 1})
    client.member_state = "rebalancing"
    client.join_answers.leader, client.join_answers.member_id = "gone-leader", "me"
    group = make_group(client, ["t"], drain_timeout=100, stall_timeout_ms=600)
    fast_watch.append(group)
    group.start()
    wait_until(lambda: client.connected, 3, "the connection")
    assert client.refuse_sync() == "gone-leader"
    assert client.refuse_sync() is None, "the remedy is applied once per named leader"
    assert any("sending one JoinGroup under that member id" in m for m in caplog.messages)

    wait_until(lambda: "still has no assignment" in caplog.text, 3, "the warning")
    stalled = [m for m in gkbroad_messages(caplog, logging.WARNING) if "still has no assignment" in m]
    assert "REBALANCE_IN_PROGRESS (2 refusal(s) in a row; the leader it names is gone-leader)" in stalled[0]
    assert "/healthz turns red after 1 s" in stalled[0]
    stats = group.stats()
    assert stats["member_state"] == "rebalancing" and 0.3 <= stats["unstable_for"] < 2
    gevent.sleep(0.7)
    warnings = [m for m in gkbroad_messages(caplog, logging.WARNING) if "still has no assignment" in m]
    assert 2 <= len(warnings) <= 5, "repeated at the warning interval, not every watch"

    client.member_state, client.generation = "stable", 7
    wait_until(lambda: group.stats()["unstable_for"] is None, 3, "the stable generation")
    assert group.stats()["generation"] == 7
    assert any(m.startswith("group unit-group: in generation 7 of the group after") for m in caplog.messages)


def test_no_remedy_while_the_member_itself_is_the_named_leader(fast_watch, caplog):
    client = FakeConsumerClient({("t", 0): 1})
    client.member_state = "rebalancing"
    client.join_answers.leader = client.join_answers.member_id = "me"
    group = make_group(client, ["t"], drain_timeout=100, stall_timeout_ms=400)
    fast_watch.append(group)
    group.start()
    assert client.refuse_sync() is None
    client.join_answers.leader = None
    assert client.refuse_sync() is None


def test_an_unjoined_member_says_so(fast_watch, caplog):
    client = FakeConsumerClient({("t", 0): 1})
    client.member_state = "unjoined"
    group = make_group(client, ["t"], drain_timeout=100, stall_timeout_ms=400)
    fast_watch.append(group)
    group.start()
    wait_until(lambda: any("has not joined the group for" in m for m in caplog.messages), 3, "the warning")
    assert "member state unjoined" in caplog.text


def test_an_unanswered_bootstrap_is_warned_about_while_it_lasts(fast_watch, caplog, monkeypatch):
    monkeypatch.setattr(poller, "_UNREACHABLE_AFTER", 0.1)
    client = FakeConsumerClient({("t", 0): 1})
    client.connect_delay = 0.6
    group = make_group(client, ["t"])
    fast_watch.append(group)
    group.start()
    wait_until(lambda: gkbroad_messages(caplog, logging.WARNING), 0.5, "the warning, before connect() returned")
    assert not client.connected
    assert "cannot reach the Kafka brokers at fake:9092 (no answer to the bootstrap yet)" in caplog.text
    assert group.stats()["unreachable_for"] >= 0.1
    assert any("joining the group at fake:9092" in m for m in gkbroad_messages(caplog, logging.INFO))
    wait_until(lambda: client.connected, 3, "the connection")
    assert group.stats()["unreachable_for"] is None


def test_stall_timeout_defaults_to_a_minute_or_half_a_minute_over_a_long_drain():
    client = FakeConsumerClient({("t", 0): 1})
    assert make_group(client, ["t"]).stats()["stall_timeout"] == 60.0
    assert make_group(client, ["t"], drain_timeout=50000).stats()["stall_timeout"] == 80.0
    assert make_group(client, ["t"], drain_timeout=100, stall_timeout_ms=2000).stats()["stall_timeout"] == 2.0
