"""A recording Kafka pipeline and the waits the end-to-end tests share."""

from __future__ import annotations

import random
from collections import defaultdict

import gevent

import gkbroad
from gkbroad.kafka import Producer
from tests.helpers.kafka_options import producer_options


class SeenOffsets:
    """What a OffsetRecordingPipeline saw, per (topic, partition), in the order it saw it."""

    def __init__(self, max_sleep: float = 0.0, slow_first: float = 0.0):
        self.handled = defaultdict(list)
        self.batched = defaultdict(list)
        self.batch_infos = []
        self.mixed_batches = 0
        self.max_sleep = max_sleep
        self.slow_first = slow_first

    @property
    def handled_count(self) -> int:
        return sum(len(offsets) for offsets in self.handled.values())

    def duplicates(self) -> int:
        return sum(len(offsets) - len(set(offsets)) for offsets in self.handled.values())


class OffsetRecordingPipeline(gkbroad.Pipeline):
    """Records offsets in handle_message and handle_batch; sleeps a random bit to shuffle timing."""

    def handle_message(self, processor, message, context: SeenOffsets):
        topic, partition, offset = _position(message)
        if context.slow_first and not context.handled:
            gevent.sleep(context.slow_first)
        if context.max_sleep:
            gevent.sleep(random.uniform(0, context.max_sleep))
        context.handled[(topic, partition)].append(offset)
        return message

    def handle_batch(self, batcher, messages, batch_info, context: SeenOffsets):
        context.batch_infos.append(batch_info)
        for message in messages:
            topic, partition, offset = _position(message)
            context.batched[(topic, partition)].append(offset)
            if (topic, partition) != batch_info.batch_key:
                context.mixed_batches += 1
        return messages


def _position(message):
    if message.metadata:
        return message.metadata["topic"], message.metadata["partition"], message.metadata["offset"]
    record = message.data
    return record.topic, record.partition, record.offset


def kafka_pipeline(
    bootstrap_servers,
    group,
    topics,
    *,
    context,
    producer_concurrency=1,
    processors=20,
    batchers=None,
    cls=OffsetRecordingPipeline,
    **overrides,
):
    return cls(
        name=f"it-{group}",
        producer={
            "module": (Producer, producer_options(bootstrap_servers, group, topics, **overrides)),
            "concurrency": producer_concurrency,
        },
        processors={"default": {"concurrency": processors, "max_demand": 10}},
        batchers=batchers or {},
        context=context,
        shutdown_timeout=30000,
    )
