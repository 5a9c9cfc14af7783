"""partition_by routing: one key always lands on one greenlet, in order; and the
Kafka producer's `ordering` modes, which set partition_by for it."""

import os
import random
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, NamedTuple

import gevent
import pytest

from gkbroad import testing
from gkbroad.kafka.formats import build_messages
from gkbroad.kafka.group.offset_tracker import OffsetTracker
from gkbroad.kafka.routing import owns, producer_index, route
from tests.helpers.engine_support import RecordingPipeline, Source
from tests.helpers.support import wait_until

KEYS = 30
PER_KEY = 20


def by_key(message):
    return message.data[0]


def keyed_data(keys=range(KEYS), per_key=PER_KEY):
    """(key, seq) pairs, keys interleaved so that every chunk mixes keys."""
    return [(key, seq) for seq in range(per_key) for key in keys]


class RandomlySlow(RecordingPipeline):
    """Sleeps a random 0-3 ms per message, so processors finish out of step."""

    rng = random.Random(7)

    def on_message(self, message):
        gevent.sleep(self.rng.random() * 0.003)
        return message


def greenlets_and_order_by_key(handled):
    greenlets, order = defaultdict(set), defaultdict(list)
    for greenlet, (key, seq) in handled:
        greenlets[key].add(greenlet)
        order[key].append(seq)
    return greenlets, order


@pytest.mark.parametrize("where", ["processors", "pipeline"])
def test_one_key_stays_on_one_processor_in_order(run_testing, where):
    options = {"processors": {"default": {"concurrency": 10, "max_demand": 5}}}
    if where == "processors":
        options["processors"]["default"]["partition_by"] = by_key
    else:
        options["partition_by"] = by_key
    pipeline = run_testing(RandomlySlow, **options)

    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, keyed_data()), timeout=20)

    assert len(successful) == KEYS * PER_KEY and failed == []
    greenlets, order = greenlets_and_order_by_key(pipeline.handled)
    assert all(len(g) == 1 for g in greenlets.values()), "a key was handled by more than one processor"
    assert all(seqs == list(range(PER_KEY)) for seqs in order.values()), "a key's messages were reordered"
    # the remainder routing uses all 10 processors, and keys 10 apart share one
    assert len(set().union(*greenlets.values())) == 10
    assert greenlets[3] == greenlets[13] == greenlets[23]


def test_without_partition_by_messages_spread_across_processors(run_testing):
    pipeline = run_testing(RandomlySlow, processors={"default": {"concurrency": 4, "max_demand": 2}})

    successful, _ = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, keyed_data(range(5), 20)), timeout=20)

    assert len(successful) == 100
    assert len({greenlet for greenlet, _ in pipeline.handled}) > 1


def test_producer_concurrency_with_partition_by_keeps_each_key_on_one_processor_in_order(run_source):
    # Like Kafka partitions: each producer greenlet owns the keys k with k % 3 == its index.
    sources = [Source(keyed_data(range(index, KEYS, 3))) for index in range(3)]
    pipeline = run_source(
        RandomlySlow,
        sources=sources,
        producer={"concurrency": 3},
        processors={"default": {"concurrency": 10, "max_demand": 5, "partition_by": by_key}},
    )

    wait_until(
        lambda: sum(s.acknowledger.acked for s in sources) == KEYS * PER_KEY,
        timeout=20,
        what="every message of every producer acknowledged",
    )

    for source in sources:
        source.assert_each_produced_message_acked_once()
    greenlets, order = greenlets_and_order_by_key(pipeline.handled)
    assert set(greenlets) == set(range(KEYS))
    assert all(len(g) == 1 for g in greenlets.values())
    assert all(seqs == list(range(PER_KEY)) for seqs in order.values())


class KeyedBatches(RandomlySlow):
    def on_message(self, message):
        return super().on_message(message).put_batch_key(message.data[0])

    def on_batch(self, messages, info):
        gevent.sleep(self.rng.random() * 0.003)
        return messages


def test_batcher_partition_by_sends_one_key_to_one_batch_processor_in_order(run_testing):
    pipeline = run_testing(
        KeyedBatches,
        partition_by=by_key,
        processors={"default": {"concurrency": 4}},
        batchers={"default": {"concurrency": 3, "batch_size": 4, "batch_timeout": 20}},
    )
    data = keyed_data(range(9), 12)

    successful, _ = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, data), timeout=20)

    assert len(successful) == len(data)
    by_key_batches = defaultdict(list)
    for call in pipeline.batches:
        key = call.info.batch_key
        assert {k for k, _ in call.data} == {key}
        assert call.info.partition == key % 3
        by_key_batches[key].append(call)
    for calls in by_key_batches.values():
        assert len({c.greenlet for c in calls}) == 1
        assert [seq for c in calls for _, seq in c.data] == list(range(12))


# -- the Kafka producer's `ordering` (gkbroad.kafka.routing) ------------------------------------


class Record(NamedTuple):
    """The ConsumerRecord fields routing reads ("record" message format)."""

    topic: str
    partition: int
    offset: int
    key: Any


def routed_options(ordering, message_format="record", batchers=None, concurrency=10):
    options = {"processors": {"default": {"concurrency": concurrency}}, "batchers": batchers or {}}
    route(options, ordering, message_format)
    return options


def kafka_message(record, message_format="record"):
    """The message the Kafka producer builds for `record`."""
    full = SimpleNamespace(value=b"v", timestamp=0, headers=[], **record._asdict())
    return build_messages([full], 1, None, 0, message_format)[0]


def test_partition_ordering_gives_each_partition_its_own_lane_in_arrival_order():
    options = routed_options("partition", batchers={"db": {}})
    by_partition = options["processors"]["default"]["partition_by"]
    assert options["batchers"]["db"]["partition_by"] is by_partition
    lanes = [by_partition(kafka_message(Record("t", p, o, b"k%d" % o))) for p in (5, 2, 7) for o in range(3)]
    assert lanes == [0, 0, 0, 1, 1, 1, 2, 2, 2], "partitions must not collide while processors are free"
    other = routed_options("partition")["processors"]["default"]["partition_by"]
    assert other(kafka_message(Record("t", 7, 0, None))) == 0, "each pipeline numbers its own partitions"


@pytest.mark.parametrize("message_format", ["record", "value"])
def test_key_ordering_routes_by_topic_partition_and_key_in_both_formats(message_format):
    options = routed_options("key", message_format, batchers={"db": {}})
    lane = options["processors"]["default"]["partition_by"]
    same = [lane(kafka_message(Record("t", 1, offset, b"a"), message_format)) for offset in range(5)]
    assert len(set(same)) == 1
    keys = {lane(kafka_message(Record("t", 1, 0, b"k%d" % k), message_format)) % 10 for k in range(200)}
    assert len(keys) == 10, "keys of one partition should spread over every processor"
    assert lane(kafka_message(Record("t", 1, 0, b"a"), message_format)) != lane(
        kafka_message(Record("t", 2, 0, b"a"), message_format)
    ), "the same key in another partition is another lane"
    no_key = {lane(kafka_message(Record("t", 1, offset, None), message_format)) for offset in range(5)}
    assert len(no_key) == 1, "records without a key share one lane"
    unhashable = [lane(kafka_message(Record("t", 1, o, {"id": 1}), message_format)) for o in range(2)]
    assert unhashable[0] == unhashable[1], "a deserialized unhashable key still routes consistently"
    by_batch_key = options["batchers"]["db"]["partition_by"]
    message = kafka_message(Record("t", 1, 0, b"a"), message_format)
    assert (
        by_batch_key(message)
        == by_batch_key(message.put_batch_key(("t", 1)))
        != by_batch_key(kafka_message(Record("t", 2, 0, b"a"), message_format))
    )


def test_none_ordering_shares_one_queue_between_processors_and_batch_processors():
    options = routed_options("none", batchers={"db": {}})
    assert options["processors"]["default"]["partition_by"] is None
    assert options["batchers"]["db"]["partition_by"] is None


class KeyLanes(RandomlySlow):
    """Records how many handlers of one partition run at once."""

    running = 0
    most = 0

    def on_message(self, message):
        KeyLanes.running += 1
        KeyLanes.most = max(KeyLanes.most, KeyLanes.running)
        try:
            return super().on_message(message)
        finally:
            KeyLanes.running -= 1


def test_key_ordering_through_the_engine_keeps_each_key_in_order_and_overlaps_keys(run_testing):
    records = [Record("t", 0, offset, b"k%d" % (offset % KEYS)) for offset in range(KEYS * PER_KEY)]
    options = routed_options("key", concurrency=10)
    pipeline = run_testing(KeyLanes, processors=options["processors"])

    # "record" format: message.data is the record, which is what the key lane reads
    successful, _ = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, records), timeout=20)

    assert len(successful) == len(records)
    order = defaultdict(list)
    for _, record in pipeline.handled:
        order[record.key].append(record.offset)
    assert all(offsets == sorted(offsets) for offsets in order.values()), "a key's records were reordered"
    assert KeyLanes.most > 1, "keys of one partition never ran at the same time"


def test_offset_tracker_never_commits_past_an_unacknowledged_offset_whatever_the_ack_order():
    """Under "key" and "none" ordering acknowledgements of one partition arrive in any
    order; the committable offset must stay below the lowest unacknowledged one."""
    rng = random.Random(3)
    for _ in range(200):
        tracker = OffsetTracker()
        offsets = sorted(rng.sample(range(400), rng.randint(1, 120)))  # gaps, as after compaction
        tracker.delivered("tp", offsets)
        unacked = set(offsets)
        committed = None
        for offset in rng.sample(offsets, len(offsets)):
            unacked.discard(offset)
            advanced = tracker.done("tp", offset, offset)
            committed = committed if advanced is None else advanced
            lowest = min(unacked, default=None)
            expected = max((o for o in offsets if lowest is None or o < lowest), default=None)
            assert committed == expected
        assert committed == offsets[-1] and tracker.pending("tp") == 0


class PerKeyBatches(RandomlySlow):
    """ordering="key" with a batch per key: put_batch_key((topic, partition, key))."""

    def on_message(self, message):
        record = super().on_message(message).data
        return message.put_batch_key((record.topic, record.partition, record.key))

    def on_batch(self, messages, info):
        gevent.sleep(self.rng.random() * 0.003)
        return messages


def test_key_ordering_with_batches_per_key_keeps_each_key_in_order_on_one_batch_processor(run_testing):
    records = [Record("t", offset % 2, offset, b"k%d" % (offset % 9)) for offset in range(9 * 12)]
    options = routed_options("key", batchers={"default": {"concurrency": 3, "batch_size": 4, "batch_timeout": 20}})
    pipeline = run_testing(PerKeyBatches, **options)

    successful, _ = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, records), timeout=20)

    assert len(successful) == len(records)
    calls_by_lane = defaultdict(list)
    for call in pipeline.batches:
        calls_by_lane[call.info.batch_key].append(call)
    assert {(r.topic, r.partition, r.key) for r in records} == set(calls_by_lane)
    for lane, calls in calls_by_lane.items():
        assert len({c.greenlet for c in calls}) == 1, f"{lane}'s batches ran on more than one batch processor"
        offsets = [record.offset for c in calls for record in c.data]
        assert offsets == sorted(offsets), f"{lane}'s records were reordered"
    assert len({c.greenlet for c in pipeline.batches}) > 1, "every batch ran on one batch processor"


# -- which producer greenlet pulls a partition ----------------------------------------------------


@pytest.mark.parametrize("topic", ["orders", "t", "quickstart-events"])
def test_a_topics_partitions_spread_evenly_over_the_producers(topic):
    for partitions in range(1, 65):
        for count in range(1, 9):
            shares = [sum(owns(topic, p, index, count) for p in range(partitions)) for index in range(count)]
            assert sum(shares) == partitions, "every partition has exactly one producer"
            assert max(shares) - min(shares) <= 1, f"{partitions} partitions over {count} producers: {shares}"


def test_the_producer_of_a_partition_is_the_same_in_every_process_and_topics_start_on_different_producers():
    here = [producer_index("orders", p, 3) for p in range(6)]
    code = "from gkbroad.kafka.routing import producer_index; print([producer_index('orders', p, 3) for p in range(6)])"
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        )
        assert there.stdout.strip() == str(here), there.stderr
    first_producers = {producer_index(f"topic-{n}", 0, 4) for n in range(20)}
    assert len(first_producers) > 1, "partition 0 of every topic landed on one producer"
