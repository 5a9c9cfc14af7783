"""Chunks end to end: what a producer hands over together is routed, queued, handled and
acknowledged as one unit (gkbroad/producer.py, step 3), split by lane only where lanes differ."""

import logging
from collections import Counter
from types import SimpleNamespace

import pytest
from gevent.event import Event

from gkbroad import Acknowledger, Message
from gkbroad.engine.repeated_log import RepeatedLog
from gkbroad.engine.stages.producer_stage import by_acknowledger
from gkbroad.engine.stages.router import LaneSplitter, Router
from gkbroad.kafka.formats import build_messages
from gkbroad.kafka.producer import Producer
from gkbroad.kafka.routing import KeyLanes, PartitionLanes, route
from tests.helpers.engine_support import RecordingPipeline, Source
from tests.helpers.fake_kafka import FakeConsumerClient, make_group
from tests.helpers.support import wait_until

LOGGER = logging.getLogger(__name__)


def kafka_chunk(partition, offsets, keys, epoch=1, message_format="record"):
    """The chunk the Kafka producer builds for one pull of `partition`."""
    records = [
        SimpleNamespace(topic="t", partition=partition, offset=o, key=k, value=b"v", timestamp=0, headers=[])
        for o, k in zip(offsets, keys, strict=True)
    ]
    return build_messages(records, epoch, None, ("t", partition, epoch), message_format)


def offsets(messages):
    return [m.acknowledger.data[2] for m in messages]


def test_partition_ordering_routes_a_whole_chunk_to_its_partitions_lane_in_one_step():
    lanes = PartitionLanes()
    assert isinstance(lanes, LaneSplitter)
    chunk = kafka_chunk(5, range(10), [b"a", b"b"] * 5)
    [(queue, part)] = lanes.split(chunk, 4).items()
    assert part is chunk, "a partition's chunk is queued as it came, not copied message by message"
    assert queue == lanes(chunk[0]) % 4 == 0
    assert list(lanes.split(kafka_chunk(2, range(3), [None] * 3), 4)) == [1], "the next partition, the next lane"


@pytest.mark.parametrize("message_format", ["record", "value"])
def test_key_ordering_splits_a_chunk_by_key_once_keeping_each_keys_order(message_format):
    lanes = route_key_lanes(message_format)
    keys = [b"k%d" % (o % 7) for o in range(70)]
    chunk = kafka_chunk(3, range(70), keys, message_format=message_format)
    parts = split_in_order(lanes, chunk, 10)
    by_key = {}
    for queue, part in parts.items():
        for message in part:
            by_key.setdefault(keys[message.acknowledger.data[2]], set()).add(queue)
    assert all(len(queues) == 1 for queues in by_key.values()), "one key landed on two processors"


@pytest.mark.parametrize("message_format", ["record", "value"])
def test_a_chunk_with_an_unhashable_key_is_split_as_each_message_would_be_routed(message_format):
    lanes = route_key_lanes(message_format)
    keys = [{"id": o % 3} if o % 2 else b"k%d" % (o % 3) for o in range(12)]  # a key_deserializer's dicts
    chunk = kafka_chunk(3, range(12), keys, message_format=message_format)
    split_in_order(lanes, chunk, 5)


def split_in_order(lanes, chunk, count):
    """`lanes.split(chunk, count)`, checked: every message in one part, each part in offset order, on
    the queue the per-message lane names."""
    parts = lanes.split(chunk, count)
    assert sorted(offsets(m for part in parts.values() for m in part)) == offsets(chunk)
    for queue, part in parts.items():
        assert offsets(part) == sorted(offsets(part)), "a key's records were reordered within the chunk"
        assert {lanes(m) % count for m in part} == {queue}, "split and the per-message lane disagree"
    return parts


def route_key_lanes(message_format):
    options = {"processors": {"default": {}}, "batchers": {}}
    route(options, "key", message_format)
    lanes = options["processors"]["default"]["partition_by"]
    assert isinstance(lanes, KeyLanes)
    return lanes


def test_the_router_calls_a_plain_partition_by_per_message_and_a_lane_splitter_once_per_chunk():
    calls = Counter()

    def by_data(message):
        calls["partition_by"] += 1
        return message.data

    class Splitter:
        def __call__(self, message):
            raise AssertionError("the router must split whole chunks with split()")

        def split(self, chunk, count):
            calls["split"] += 1
            return {0: chunk}

    chunk = [Message(data=i, acknowledger=Acknowledger(None, "ref", i)) for i in (0, 1, 2, 4, 5)]
    plain = Router(3, by_data, RepeatedLog("t", LOGGER))
    plain.dispatch(chunk)
    assert calls["partition_by"] == 5
    assert [[m.data for m in q.get_nowait()] for q in plain.queues] == [[0], [1, 4], [2, 5]]

    splitting = Router(3, Splitter(), RepeatedLog("t", LOGGER))
    splitting.dispatch(chunk)
    assert calls["split"] == 1 and splitting.queues[0].get_nowait() is chunk


def test_a_shared_queue_gets_a_chunk_in_one_piece_per_processor():
    router = Router(4, None, RepeatedLog("t", LOGGER))
    router.dispatch([Message(data=i, acknowledger=Acknowledger(None, "ref", i)) for i in range(10)])
    pieces = [[m.data for m in router.queues[0].get_nowait()] for _ in range(len(router.queues[0]))]
    assert pieces == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_what_receive_returns_is_cut_into_runs_of_one_acknowledger_and_at_most_chunk_size():
    a, b = object(), object()
    messages = [
        Message(data=i, acknowledger=Acknowledger(handler, ref, i))
        for i, (handler, ref) in enumerate([(a, 1)] * 5 + [(a, 2)] * 2 + [(b, 2)] + [(a, 2)])
    ]
    chunks = by_acknowledger(messages, 3)
    assert [[m.data for m in chunk] for chunk in chunks] == [[0, 1, 2], [3, 4], [5, 6], [7], [8]]


def test_a_chunk_is_acknowledged_in_one_call(run_source):
    source = Source(range(40))
    pipeline = run_source(RecordingPipeline, source, processors={"default": {"concurrency": 1, "max_demand": 10}})
    wait_until(lambda: source.acknowledger.acked == 40, what="every message acknowledged")
    calls = source.acknowledger.calls
    assert len(calls) < 40 and all(len(successful) >= 1 for _, successful, _ in calls)
    assert sorted(m.data for _, successful, _ in calls for m in successful) == list(range(40))
    assert len(pipeline.handled) == 40


@pytest.fixture
def kafka_producer():
    groups = []

    def start(logs):
        client = FakeConsumerClient(logs)
        group = make_group(client, ["t"])
        group.start()
        groups.append(group)
        wait_until(lambda: client.connected, 5, "the fake client to connect")
        client.assign(*logs)
        producer = Producer(
            {"group": group, "message_format": "record", "receive_interval": 100, "topics": []}, index=0, count=1
        )
        buffered = sum(logs.values())
        wait_until(
            lambda: sum(p["buffered"] for p in group.stats()["partitions"].values()) == buffered, 5, "the records"
        )
        return producer, group

    yield start
    for group in groups:
        group.stop(1)


def test_the_kafka_producer_pulls_whole_chunks_for_the_partitions_with_the_least_in_flight_first(kafka_producer):
    producer, group = kafka_producer({("t", 0): 40, ("t", 1): 40, ("t", 2): 40})
    first = producer.receive_chunks(25, 10)
    assert [len(chunk) for chunk in first] == [10, 10, 5]
    for chunk in first:
        (partition,) = {m.acknowledger.data[1] for m in chunk}
        assert {m.acknowledger.ref for m in chunk} == {("t", partition, 1)}, "a chunk shares its partition's ref"
    # The partition pulled last has 5 in flight, the others 10: it is refilled first.
    short = first[-1][0].acknowledger.data[1]
    [again] = producer.receive_chunks(5, 10)
    assert again[0].acknowledger.data[1] == short

    producer.ack(("t", short, 1), first[-1] + again, [])
    assert group.in_flight("t", short) == 0
    [refill] = producer.receive_chunks(10, 10)
    assert refill[0].acknowledger.data[1] == short, "the drained partition is the first to get work again"


def test_the_kafka_producer_shares_a_demand_out_in_whole_chunks(kafka_producer):
    """100 records of demand over 8 partitions: ten chunks of 10, not eight pulls of 13 cut into 10 and 3
    (each chunk costs a round of routing, queueing and acknowledging, however small)."""
    producer, _ = kafka_producer({("t", p): 40 for p in range(8)})
    chunks = producer.receive_chunks(100, 10)
    assert [len(chunk) for chunk in chunks] == [10] * 10
    assert len({chunk[0].acknowledger.data[1] for chunk in chunks}) == 8, "every partition got a chunk"


def test_a_message_turning_stale_in_the_middle_of_a_chunk_is_not_handled(run_source):
    """The chunk's first message blocks past the revocation: the rest of the chunk is acknowledged as
    revoked, in one call, and never handled."""

    class Revocable:
        def __init__(self):
            self.revoked = False
            self.calls = []

        def ack(self, ref, successful, failed):
            self.calls.append((offsets(successful), offsets(failed), [m.failure_reason for m in failed]))

        def is_stale(self, data):
            return self.revoked

    acknowledger = Revocable()
    release = Event()

    class BlocksOnFirst(RecordingPipeline):
        def on_message(self, message):
            if message.acknowledger.data[2] == 0:
                release.wait()
            return message

    class OneChunk(Source):
        def take(self, demand):
            if self.produced:
                return []
            self.produced = [
                Message(data=o, acknowledger=Acknowledger(acknowledger, "p", ("t", 0, o, 1))) for o in range(5)
            ]
            return self.produced

    pipeline = run_source(BlocksOnFirst, OneChunk(), processors={"default": {"concurrency": 1, "max_demand": 5}})
    wait_until(lambda: len(pipeline.handled) == 1, what="the first message handled")
    acknowledger.revoked = True
    release.set()
    wait_until(lambda: len(acknowledger.calls) == 2, what="the chunk acknowledged")
    assert [d for _, d in pipeline.handled] == [0]
    assert acknowledger.calls[0][:2] == ([], [1, 2, 3, 4])
    assert set(acknowledger.calls[0][2]) == {"revoked: the partition is no longer assigned to this member"}
    assert acknowledger.calls[1][:2] == ([0], [])


def test_small_parts_queued_for_one_processor_are_handled_together_up_to_max_demand():
    from gevent.queue import Queue

    from gkbroad.engine.stages.base import STOP
    from gkbroad.engine.stages.processor import ProcessorStage

    a, b = object(), object()

    def part(handler, *data):
        return [Message(data=d, acknowledger=Acknowledger(handler, d, d)) for d in data]

    inbox = Queue()
    for queued in (part(a, 1, 2), part(a, 3), part(a, 4, 5, 6), part(b, 7), STOP):
        inbox.put(queued)
    stage = ProcessorStage("p", "default", inbox, False, 4, None, None, {})
    taken = [[m.data for m in chunk] for chunk in stage._chunks()]
    assert taken == [[1, 2, 3], [4, 5, 6], [7]], "parts join up to max_demand, and only with one acknowledger"
    shared = ProcessorStage("p", "default", Queue(), True, 4, None, None, {})
    for queued in (part(a, 1), part(a, 2), STOP):
        shared.inbox.put(queued)
    assert [[m.data for m in chunk] for chunk in shared._chunks()] == [[1], [2]], "a shared inbox's pieces stay apart"
