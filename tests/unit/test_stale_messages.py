"""Stale messages: when a message's acknowledger says it is stale (for Kafka: its partition was
given to another member), it never reaches handle_message or handle_batch, and it is acknowledged
as failed ("revoked") without going through handle_failed."""

import gevent
from gevent.event import Event

from gkbroad import Acknowledger, BaseProducer, Message
from gkbroad.engine.callbacks import REVOKED
from tests.helpers.engine_support import CountingAcknowledger, RecordingPipeline
from tests.helpers.support import wait_until


class RevocableAcknowledger(CountingAcknowledger):
    """Data is (partition, offset); partitions in `revoked` are stale."""

    def __init__(self):
        super().__init__()
        self.revoked = set()

    def is_stale(self, data):
        return data[0] in self.revoked


class Partitions(BaseProducer):
    """Delivers `messages` (partition, offset) pairs once, in order."""

    @classmethod
    def prepare_for_start(cls, options, pipeline_options):
        pipeline_options["partition_by"] = lambda m: m.data[0]
        return [], pipeline_options

    def __init__(self, options, *, index, count):
        super().__init__(options, index=index, count=count)
        self.pending = list(options["data"])
        self.acknowledger = options["acknowledger"]

    def receive(self, demand):
        taken, self.pending = self.pending[:demand], self.pending[demand:]
        if not taken:
            gevent.sleep(0.01)
        return [Message(data=d, acknowledger=Acknowledger(self.acknowledger, "ref", d)) for d in taken]


class BlocksOnFirst(RecordingPipeline):
    """handle_message blocks on (0, 0) until `release` is set, like a handler stuck past drain_timeout."""

    def __init__(self, **options):
        self.release = Event()
        super().__init__(**options)

    def on_message(self, message):
        if message.data == (0, 0):
            self.release.wait()
        return message


def start(cls, data, acknowledger, **options):
    return cls(
        name="stale",
        producer={"module": (Partitions, {"data": data, "acknowledger": acknowledger})},
        **{"processors": {"default": {"concurrency": 2, "max_demand": 10}}, **options},
    ).start()


def test_messages_that_became_stale_while_a_handler_blocked_are_not_handled():
    acknowledger = RevocableAcknowledger()
    data = [(p, o) for o in range(5) for p in (0, 1)]
    pipeline = start(BlocksOnFirst, data, acknowledger)
    try:
        wait_until(lambda: len(acknowledger.successful) == 5, what="partition 1 handled")
        assert [d for _, d in pipeline.handled if d[0] == 0] == [(0, 0)]

        acknowledger.revoked.add(0)  # the drain gave up and partition 0 went to another member
        pipeline.release.set()

        wait_until(lambda: acknowledger.acked == len(data), what="every message acknowledged")
    finally:
        assert pipeline.stop() is True
    assert [d for _, d in pipeline.handled if d[0] == 0] == [(0, 0)], "a revoked partition's record was handled"
    assert sorted(m.data for m in acknowledger.failed) == [(0, o) for o in range(1, 5)]
    assert all(m.failure_reason == REVOKED for m in acknowledger.failed)
    assert pipeline.failed_calls == [], "stale messages must not go to handle_failed"


class BatchesByPartition(RecordingPipeline):
    def on_message(self, message):
        return message.put_batch_key(message.data[0])


def test_stale_messages_skip_handle_batch():
    acknowledger = RevocableAcknowledger()
    pipeline = start(
        BatchesByPartition,
        [(0, 0), (1, 0), (0, 1), (1, 1)],
        acknowledger,
        batchers={"default": {"batch_size": 10, "batch_timeout": 300}},
    )
    try:
        wait_until(lambda: len(pipeline.handled) == 4, what="every message handled")
        acknowledger.revoked.add(1)  # while the batches wait for their timeout
        wait_until(lambda: acknowledger.acked == 4, what="every message acknowledged")
    finally:
        pipeline.stop()
    batched = [d for call in pipeline.batches for d in call.data]
    assert sorted(batched) == [(0, 0), (0, 1)]
    assert all(call.info.size == len(call.data) for call in pipeline.batches)
    assert sorted(m.data for m in acknowledger.failed) == [(1, 0), (1, 1)]
    assert pipeline.failed_calls == []


def test_a_message_stale_before_it_was_handled_never_reaches_prepare_messages():
    class Prepares(RecordingPipeline):
        prepared = []

        def prepare_messages(self, messages, context):
            self.prepared.extend(m.data for m in messages)
            return messages

    acknowledger = RevocableAcknowledger()
    acknowledger.revoked.add(1)
    pipeline = start(Prepares, [(0, 0), (1, 0), (0, 1)], acknowledger)
    try:
        wait_until(lambda: acknowledger.acked == 3, what="every message acknowledged")
    finally:
        pipeline.stop()
    assert sorted(pipeline.prepared) == [(0, 0), (0, 1)]
    assert [m.data for m in acknowledger.failed] == [(1, 0)]


class Group:
    """The part of a ConsumerGroup the Kafka producer's is_stale uses: which epoch holds a partition."""

    def __init__(self, held):
        self.held = held  # {(topic, partition): epoch}

    def is_current(self, topic, partition, epoch, offset=None):
        return self.held.get((topic, partition)) == epoch


def kafka_producer(group):
    from gkbroad.kafka import Producer

    return Producer(
        {"group": group, "message_format": "value", "receive_interval": 100, "topics": []}, index=0, count=1
    )


def test_the_kafka_producer_calls_a_record_stale_once_its_partition_epoch_is_gone():
    group = Group({("t", 0): 2, ("t", 1): 1})
    producer = kafka_producer(group)

    assert producer.is_stale(("t", 0, 17, 2)) is False
    assert producer.is_stale(("t", 0, 17, 1)) is True  # pulled in an earlier assignment
    assert producer.is_stale(("t", 2, 0, 1)) is True  # released
    del group.held[("t", 1)]
    assert producer.is_stale(("t", 1, 5, 1)) is True


class FailsOnFirst(RecordingPipeline):
    def on_message(self, message):
        if message.data == (0, 0):
            raise ConnectionError("down")
        return message


def test_a_message_that_turns_stale_while_it_waits_for_a_retry_is_not_tried_again():
    acknowledger = RevocableAcknowledger()
    pipeline = start(
        FailsOnFirst,
        [(0, 0), (0, 1)],
        acknowledger,
        processors={"default": {"retry": {"max_attempts": 5, "backoff": 200, "max_backoff": 200}}},
    )
    try:
        wait_until(lambda: len(pipeline.handled) == 1, what="the first attempt")
        acknowledger.revoked.add(0)

        wait_until(lambda: acknowledger.acked == 2, what="both messages acknowledged")
    finally:
        assert pipeline.stop() is True
    assert [d for _, d in pipeline.handled] == [(0, 0)]
    assert sorted(m.data for m in acknowledger.failed) == [(0, 0), (0, 1)]
    assert all(m.failure_reason == REVOKED for m in acknowledger.failed)
    assert pipeline.failed_calls == []
