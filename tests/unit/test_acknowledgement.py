"""Acknowledgements are grouped: one ack() call per (acknowledger, ref) per group of handled messages."""

import logging

from gkbroad import Acknowledger, Message
from gkbroad.engine.acknowledger import ack_messages
from tests.helpers.engine_support import CountingAcknowledger, RecordingPipeline, Source
from tests.helpers.support import wait_until


def message(handler, ref, data):
    return Message(data=data, acknowledger=Acknowledger(handler, ref, None))


def test_ack_messages_calls_each_acknowledger_once_with_its_messages_in_order():
    first, second = CountingAcknowledger(), CountingAcknowledger()
    ok = [message(first, "a", 1), message(second, "a", 2), message(first, "b", 3), message(first, "a", 4)]
    bad = [message(first, "a", 5), message(second, "z", 6)]

    ack_messages(ok, bad)

    data = lambda messages: [m.data for m in messages]  # noqa: E731
    assert [(ref, data(s), data(f)) for ref, s, f in first.calls] == [("a", [1, 4], [5]), ("b", [3], [])]
    assert [(ref, data(s), data(f)) for ref, s, f in second.calls] == [("a", [2], []), ("z", [], [6])]


class Raising:
    def ack(self, ref, successful, failed):
        raise RuntimeError("acknowledger down")


def test_an_acknowledger_that_raises_does_not_stop_the_others(caplog):
    counting = CountingAcknowledger()

    ack_messages([message(Raising(), "r", 1), message(counting, "r", 2)], [])

    assert [m.data for m in counting.successful] == [2]
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


def test_a_batch_mixing_two_refs_is_acknowledged_in_one_call_per_ref(run_source):
    source = Source(range(20), ref=lambda data: data % 2)
    run_source(
        RecordingPipeline,
        source,
        processors={"default": {"concurrency": 1}},
        batchers={"default": {"batch_size": 10, "batch_timeout": 60_000}},
    )

    wait_until(lambda: source.acknowledger.acked == 20, what="both batches acknowledged")

    calls = source.acknowledger.calls
    assert sorted((ref, len(ok), len(bad)) for ref, ok, bad in calls) == [(0, 5, 0), (0, 5, 0), (1, 5, 0), (1, 5, 0)]
    assert all({m.data % 2 for m in ok} == {ref} for ref, ok, _ in calls)


def test_an_acknowledger_that_raises_does_not_stop_the_pipeline(run_source):
    source = Source(range(30))
    original_ack = source.acknowledger.ack
    calls = []

    def flaky_ack(ref, successful, failed):
        calls.append(len(successful))
        original_ack(ref, successful, failed)
        if len(calls) == 1:
            raise RuntimeError("acknowledger down")

    source.acknowledger.ack = flaky_ack
    run_source(RecordingPipeline, source, processors={"default": {"concurrency": 2, "max_demand": 3}})

    wait_until(lambda: source.acknowledger.acked == 30, what="every message acknowledged")
    assert len(calls) > 1
    source.assert_each_produced_message_acked_once()
