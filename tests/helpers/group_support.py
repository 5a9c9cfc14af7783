"""Building a ConsumerGroup as the Producer builds it, and a consumer that drives it the way a
producer stage does: for the integration tests of the group without the pipeline engine."""

from __future__ import annotations

import time

import gevent

from gkbroad.config.validation import validate
from gkbroad.kafka.group.consumer_group import ConsumerGroup
from gkbroad.kafka.options import KafkaProducerOptions
from tests.helpers.kafka_options import producer_options


def build_group(cls=ConsumerGroup, **options):
    """A group built as the Producer builds it: from options the schema validated."""
    return cls.from_options(validate(KafkaProducerOptions, options, "producer.module"))


def make_group(cluster, topic, group_id, cls=ConsumerGroup, topic_config=None, **options):
    """A group of `cluster` reading `topic` from the beginning (`topic_config` adds topic options)."""
    group_options = producer_options(cluster.bootstrap_servers, group_id, [topic], **options)
    group_options["topics"][0].update(topic_config or {})
    return build_group(cls, **group_options)


class CallbackRecordingGroup(ConsumerGroup):
    """Records the lifecycle callbacks: (kind, partition, group name, time.monotonic()) per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []

    def handle_consumer_start(self, topic, partition, group_name):
        self.events.append(("start", partition, group_name, time.monotonic()))

    def handle_consumer_stop(self, topic, partition, group_name, reason):
        self.events.append((reason, partition, group_name, time.monotonic()))

    def reasons(self):
        """(kind, partition) of each callback, in order."""
        return [(kind, partition) for kind, partition, _, _ in self.events]


class Consumer:
    """Pulls from a group like a producer stage, acking at once or later."""

    def __init__(self, group, batch=100, ack=True):
        self.group = group
        self.batch = batch
        self.auto_ack = ack
        self.seen = {}  # partition -> [offsets] in pull order
        self.unacked = []  # (topic, partition, offset, epoch) kept back

    @property
    def count(self):
        return sum(len(offsets) for offsets in self.seen.values())

    def pull_round(self):
        pulled = 0
        for topic, partition in self.group.assigned_partitions():
            epoch, records = self.group.pull(topic, partition, self.batch)
            acks = [(r.topic, r.partition, r.offset, epoch) for r in records]
            self.seen.setdefault(partition, []).extend(r.offset for r in records)
            if self.auto_ack:
                self.group.ack(acks)
            else:
                self.unacked.extend(acks)
            pulled += len(records)
        return pulled

    def run_until(self, count, timeout, pause=0.0):
        self.pull_until(lambda: self.count >= count, timeout, pause, f"{count} records")

    def pull_until(self, condition, timeout, pause=0.0, what="the condition"):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout}s (pulled {self.count}); stats: {self.group.stats()}")
            if not self.pull_round():
                self.group.wait_for_records(0.2)
            if pause:
                gevent.sleep(pause)
            else:
                gevent.sleep(0)


def break_the_poll_loop(group):
    """Make the next round of the group's poll loop raise, as a bug in it would."""

    def paused():
        raise RuntimeError("a bug in the poll loop")

    group.consumer_client.paused = paused


def kill_a_committer(group):
    """Kill the group's first committer greenlet, as a bug in it would."""
    group.greenlets[1].kill(RuntimeError("a bug in a committer"), block=False)
