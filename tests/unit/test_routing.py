"""partition_by routing: one key always lands on one greenlet, in order."""

import random
from collections import defaultdict

import gevent
import pytest
from engine_support import Recording, Source, wait_until

from gkbroad import testing

KEYS = 30
PER_KEY = 20


def by_key(message):
    return message.data[0]


def keyed_data(keys=range(KEYS), per_key=PER_KEY):
    """(key, seq) pairs, keys interleaved so that every chunk mixes keys."""
    return [(key, seq) for seq in range(per_key) for key in keys]


class RandomlySlow(Recording):
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
