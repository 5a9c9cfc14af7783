"""The Kafka producer stage: pulls records from one shared ConsumerGroup on demand.

prepare_for_start validates the options, builds the ConsumerGroup (the one
membership of this process) and hands it to the pipeline as a service, and sets
the processors' and batchers' partition_by for the `ordering` option (see
routing): by default every record of a partition is handled by one processor
greenlet and one batch processor, in offset order.

Each producer greenlet owns the assigned partitions whose stable hash modulo
the producer count equals its index. A round pulls whole chunks (at most the
processors' max_demand records each) from its partitions, those with the
fewest records in flight first, so none starves; after an empty round it
waits up to receive_interval (waking early when records arrive).
Acknowledgements go back to the group, which commits contiguous offsets.
With the `dead_letter` option, failed messages are acknowledged only once their
dead letters were written (see gkbroad.kafka.dead_letter); the writer is a
second service of the pipeline, so when it gives up the pipeline fails.
"""

from __future__ import annotations

import random
from typing import Any

from gevent.event import Event

from ..config.validation import validate
from ..errors import ConfigError
from ..message import Message
from ..producer import BaseProducer, Service
from .dead_letter import DeadLetter, DeadLetterError
from .decoding import Decoding
from .formats import build_messages
from .group.consumer_group import ConsumerGroup
from .options import KafkaProducerOptions
from .routing import owns, route

__all__ = ["Producer"]

OPTIONS_PATH = "producer.module"


class Producer(BaseProducer):
    """Consume Kafka topics through one consumer-group membership. Options: see docs/options.md."""

    @classmethod
    def prepare_for_start(
        cls, options: dict[str, Any], pipeline_options: dict[str, Any]
    ) -> tuple[list[Service], dict[str, Any]]:
        opts = validate(KafkaProducerOptions, options, OPTIONS_PATH)
        _refuse_partition_by(pipeline_options)
        group_class = opts["consumer_group"] or ConsumerGroup
        group = group_class.from_options(opts)
        services: list[Service] = [group]
        dead_letter = None
        if opts["dead_letter"] is not None:
            dead_letter = DeadLetter.from_options(opts["dead_letter"], group.connection, opts["group_name"])
            services.append(dead_letter)
        pipeline_options["producer"]["module"] = (cls, {**opts, "group": group, "dead_letter_writer": dead_letter})
        route(pipeline_options, opts["ordering"], opts["message_format"])
        return services, pipeline_options

    def __init__(self, options: dict[str, Any], *, index: int, count: int):
        super().__init__(options, index=index, count=count)
        self.group: ConsumerGroup = options["group"]
        self.dead_letter: DeadLetter | None = options.get("dead_letter_writer")
        self.message_format = options["message_format"]
        self.decoding = Decoding(options["topics"], self.message_format)
        self.receive_interval = options["receive_interval"] / 1000.0
        self.draining = Event()

    def receive_chunks(self, demand: int, chunk_size: int) -> list[list[Message]]:
        """Pull up to `demand` records; each pull is cut into chunks of at most `chunk_size`.

        The partitions with the fewest records in flight (pulled, not yet
        acknowledged) are pulled first, ties in random order, each an equal
        share of what is left of the demand but at least a chunk: credits
        coming back from the processor that finished a partition's chunk go
        to that partition, so every lane keeps work and none starves, while a
        large demand still takes few pulls. Passes repeat over the partitions
        that filled their share while demand is left. A chunk holds the
        records of one partition and epoch, which is its messages'
        acknowledger ref, so it is routed, checked and acknowledged as one.
        """
        partitions = self.partitions()
        random.shuffle(partitions)
        partitions.sort(key=self._in_flight)
        chunks: list[list[Message]] = []
        taken = 0
        while partitions and taken < demand:
            share = max(chunk_size, -(-(demand - taken) // len(partitions)))
            filled = []
            for topic, partition in partitions:
                size = min(share, demand - taken)
                if not size:
                    break
                epoch, records = self.group.pull(topic, partition, size)
                if records:
                    messages = self._messages(topic, partition, epoch, records)
                    chunks += (messages[start : start + chunk_size] for start in range(0, len(messages), chunk_size))
                    taken += len(records)
                    if len(records) == size:
                        filled.append((topic, partition))
            partitions = filled
        return chunks

    def receive(self, demand: int) -> list[Message]:
        """The messages of receive_chunks, in one list."""
        return [message for chunk in self.receive_chunks(demand, demand) for message in chunk]

    def _in_flight(self, topic_partition: tuple[str, int]) -> int:
        return self.group.in_flight(*topic_partition)

    def _messages(self, topic: str, partition: int, epoch: int, records: list[Any]) -> list[Message]:
        built = build_messages(records, epoch, self, (topic, partition, epoch), self.message_format)
        return list(map(self.decoding.apply, built, records)) if self.decoding else built

    def partitions(self) -> list[tuple[str, int]]:
        """The assigned (topic, partition) pairs this producer greenlet pulls from (also for status pages)."""
        return [tp for tp in self.group.assigned_partitions() if owns(*tp, self.index, self.count)]

    def idle(self) -> None:
        """After an empty round: wait up to receive_interval, waking early when records arrive."""
        if not self.draining.is_set():
            self.group.wait_for_records(min(self.receive_interval, 1.0))

    def ack(self, ref: Any, successful: list[Message], failed: list[Message]) -> None:
        """Successful and failed alike advance the offsets: failures were reported to handle_failed,
        and with a dead-letter topic, they count once the broker acknowledged their dead letters (until
        then this call blocks; when the writer gives up they are never acknowledged)."""
        if failed and self.dead_letter is not None:
            failed = self._dead_lettered(self.dead_letter, failed)
        self.group.ack([m.acknowledger.data for group in (successful, failed) for m in group])

    def _dead_lettered(self, writer: DeadLetter, failed: list[Message]) -> list[Message]:
        """The failed messages that may be acknowledged: the stale ones (whose partition moved on: the
        group ignores them, their new owner reads them again) and the rest once written."""
        stale = [m for m in failed if self.is_stale(m.acknowledger.data)]
        current = [m for m in failed if m not in stale] if stale else failed
        try:
            writer.send(current)
        except DeadLetterError:
            # The writer reported it: the pipeline fails, and nothing is committed past these offsets.
            self.group.withdraw(m.acknowledger.data for m in current)
            return stale
        return failed

    def withdraw(self, ref: Any, messages: list[Message]) -> None:
        """Messages the pipeline gave up without acknowledging them: the group stops waiting for them
        (a stop or a rebalance does not wait for their acks) and commits nothing past them."""
        self.group.withdraw(m.acknowledger.data for m in messages)

    def is_stale(self, data: tuple[str, int, int, int]) -> bool:
        """True when the message's partition was given up since it was pulled
        (the drain timed out, or the membership was lost): its new owner reads
        it again, and handling it here could overwrite what that owner did.
        ``data`` is the acknowledger data (topic, partition, offset, epoch)."""
        topic, partition, _, epoch = data
        return not self.group.is_current(topic, partition, epoch)

    def prepare_for_draining(self) -> None:
        self.draining.set()


def _refuse_partition_by(pipeline_options: dict[str, Any]) -> None:
    places = []
    if pipeline_options.get("partition_by") is not None:
        places.append("partition_by")
    for kind in ("processors", "batchers"):
        for name, stage in (pipeline_options.get(kind) or {}).items():
            if stage.get("partition_by") is not None:
                places.append(f"{kind}.{name}.partition_by")
    if places:
        raise ConfigError(
            f"{', '.join(places)}: the Kafka producer sets partition_by itself so that each partition's records "
            "are handled in order; remove it"
        )
