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
The records handlers add (gkbroad.kafka.outputs) are written the same way
before their messages are acknowledged; with `exactly_once`, outputs and dead
letters are staged instead and written in the transaction that commits their
offsets (gkbroad.kafka.transactions).
With the `retry_topic` option (for the processors' ``retry.mode = "topic"``),
failed attempts are parked there (gkbroad.kafka.retry_topic): the group
consumes the retry topic too, and a retry partition whose head record is not
due yet is paused until it is, as a handler's pause would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
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
from .options import KafkaProducerOptions, OutputOptions
from .outputs import OutputRecord, OutputsNotWritten, OutputWriter, may_have_outputs, outputs_of
from .retry_topic import RetryTopic, due_ms, retry_attempt, source_topic
from .routing import owns, route
from .transactions import Transactions

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
        _check_retry_mode(pipeline_options, opts["retry_topic"])
        group_class = opts["consumer_group"] or ConsumerGroup
        retry_topic = None
        if opts["retry_topic"] is not None:
            # Consumed like the first topic, decoded as each record's source topic says (receive).
            parked = {**opts["topics"][0], "name": opts["retry_topic"]["topic"], "offset_reset_policy": "earliest"}
            parked.update(value_deserializer="bytes", key_deserializer="bytes", value_schema=None)
            group = group_class.from_options({**opts, "topics": [*opts["topics"], parked]})
            retry_topic = RetryTopic.from_options(opts["retry_topic"], group.writer_connection, opts["group_name"])
        else:
            group = group_class.from_options(opts)
        services: list[Service] = [group] if retry_topic is None else [retry_topic, group]  # created first
        writers: dict[str, Any] = {
            "group": group,
            "dead_letter_writer": None,
            "transactions": None,
            "retry_topic_writer": retry_topic,
        }
        if opts["exactly_once"] is not None:
            transactions = Transactions.from_options(opts["exactly_once"], group.writer_connection)
            transactions.bind(group.consumer_client, group.is_current)
            group.commit_through(transactions.commit)
            services.insert(0, transactions)  # stopped after the group: its final commits are transactions
            writers["transactions"] = transactions
        else:
            output_options = opts["outputs"] or validate(OutputOptions, {}, f"{OPTIONS_PATH}.outputs")
            writers["output_writer"] = OutputWriter.from_options(
                output_options, group.writer_connection, "gkbroad-outputs"
            )
            services.append(writers["output_writer"])
        if opts["dead_letter"] is not None:
            writers["dead_letter_writer"] = DeadLetter.from_options(
                opts["dead_letter"], group.writer_connection, opts["group_name"]
            )
            services.append(writers["dead_letter_writer"])
            if writers["transactions"] is not None:  # the dead letters go out with the transactions
                writers["transactions"].dead_letter_topic = opts["dead_letter"]["topic"]
        pipeline_options["producer"]["module"] = (cls, {**opts, **writers})
        route(pipeline_options, opts["ordering"], opts["message_format"])
        return services, pipeline_options

    def __init__(self, options: dict[str, Any], *, index: int, count: int):
        super().__init__(options, index=index, count=count)
        self.group: ConsumerGroup = options["group"]
        self.dead_letter: DeadLetter | None = options.get("dead_letter_writer")
        self.transactions: Transactions | None = options.get("transactions")
        self.output_writer: OutputWriter | None = options.get("output_writer")
        self.retry_topic: RetryTopic | None = options.get("retry_topic_writer")
        self.retry_topic_name = self.retry_topic.topic if self.retry_topic is not None else None
        self.message_format = options["message_format"]
        self.decoding = Decoding(options["topics"], self.message_format)
        self.receive_interval = options["receive_interval"] / 1000.0
        self.draining = Event()

    def receive_chunks(self, demand: int, chunk_size: int) -> list[list[Message]]:
        """Pull up to `demand` records; each pull is cut into chunks of at most `chunk_size`.

        The partitions with the fewest records in flight (pulled, not yet
        acknowledged) are pulled first, ties in random order, each an equal
        share of what is left of the demand in whole chunks (13 records would
        travel as chunks of 10 and 3, each costing a round), but at least a chunk: credits
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
            share = chunk_size * max(1, (demand - taken) // (len(partitions) * chunk_size))
            filled = []
            for topic, partition in partitions:
                size = min(share, demand - taken)
                if not size:
                    break
                epoch, records = self.group.pull(topic, partition, size)
                if not records:
                    continue
                if topic == self.retry_topic_name:  # never refilled: it may have paused at a record not due
                    messages = self._due_retries(topic, partition, epoch, records)
                else:
                    messages = self._messages(topic, partition, epoch, records)
                    if len(records) == size:
                        filled.append((topic, partition))
                chunks += (messages[start : start + chunk_size] for start in range(0, len(messages), chunk_size))
                taken += len(messages)
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

    def _due_retries(self, topic: str, partition: int, epoch: int, records: list[Any]) -> list[Message]:
        """Messages of the retry-topic records that are due, decoded as their source topic says, with
        ``metadata["attempt"]``; at the first one not due, the partition pauses until it is."""
        now = time.time() * 1000
        for index, record in enumerate(records):
            due = due_ms(record)
            if due is not None and due > now:
                reason = f"retry due at {time.strftime('%H:%M:%S', time.localtime(due / 1000))}"
                self.group.pause_partition(topic, partition, record.offset, epoch, (due - now) / 1000, reason)
                records = records[:index]
                break
        messages = build_messages(records, epoch, self, (topic, partition, epoch), self.message_format)
        for message, record in zip(messages, records, strict=True):
            message.metadata["attempt"] = retry_attempt(record)
            if self.decoding:
                self.decoding.apply(message, record, source_topic(record))
        return messages

    def retry_later(self, message: Message, delay: float) -> None:
        """The "topic" retry mode: park the failed attempt in the retry topic until `delay` seconds from
        now, then acknowledge the message (once the broker confirmed the write). A stale message is left
        to its partition's new owner. Raises DeadLetterError when the write failed for good."""
        if self.retry_topic is None:
            raise ConfigError("retry mode 'topic' needs the Kafka producer's retry_topic option")
        if self.is_stale(message.acknowledger.data):
            return
        self.retry_topic.write(message, delay)
        self.group.ack([message.acknowledger.data])

    def partitions(self) -> list[tuple[str, int]]:
        """The assigned (topic, partition) pairs this producer greenlet pulls from (also for status pages)."""
        return [tp for tp in self.group.assigned_partitions() if owns(*tp, self.index, self.count)]

    def idle(self) -> None:
        """After an empty round: wait up to receive_interval, waking early when records arrive."""
        if not self.draining.is_set():
            self.group.wait_for_records(min(self.receive_interval, 1.0))

    def ack(self, ref: Any, successful: list[Message], failed: list[Message]) -> None:
        """Successful and failed alike advance the offsets: failures were reported to handle_failed.
        Before they count, the outputs of the successful ones and the dead letters of the failed ones
        (with a dead-letter topic) are written and acknowledged by the broker (until then this call
        blocks; when a writer gives up they are never acknowledged) or, with exactly_once, staged for
        the transaction that commits their offsets."""
        if self.transactions is not None:
            failed = self._stage(self.transactions, successful, failed)
        else:
            if self.output_writer is not None and may_have_outputs(successful) and any(map(outputs_of, successful)):
                successful = self._written(successful, self._output_records, self.output_writer.send)
            if failed and self.dead_letter is not None:
                failed = self._written(failed, self.dead_letter.records, self.dead_letter.send_records)
        self.group.ack([m.acknowledger.data for group in (successful, failed) for m in group])
        if self.transactions is not None:
            self.transactions.wait_for_room()

    @staticmethod
    def _output_records(messages: list[Message]) -> list[OutputRecord]:
        return [record for message in messages for record in outputs_of(message)]

    def _written(
        self,
        messages: list[Message],
        records_of: Callable[[list[Message]], list[OutputRecord]],
        send: Callable[[list[OutputRecord]], None],
    ) -> list[Message]:
        """The messages that may be acknowledged: the stale ones (whose partition moved on: the group
        ignores them, their new owner reads them again) and the rest once their records were written."""
        stale = [m for m in messages if self.is_stale(m.acknowledger.data)]
        current = [m for m in messages if m not in stale] if stale else messages
        try:
            send(records_of(current))
        except (DeadLetterError, OutputsNotWritten):
            # The writer reported it: the pipeline fails, and nothing is committed past these offsets.
            self.group.withdraw(m.acknowledger.data for m in current)
            return stale
        return messages

    def _stage(self, transactions: Transactions, successful: list[Message], failed: list[Message]) -> list[Message]:
        """Exactly once: keep each message's outputs, or a failed one's dead letter, for the transaction
        that will commit its offset. Returns the failed messages that may be acknowledged."""
        for message in successful:
            transactions.stage(message.acknowledger.data, outputs_of(message))
        if not failed or self.dead_letter is None:
            return failed
        current = [m for m in failed if not self.is_stale(m.acknowledger.data)]
        try:
            letters = self.dead_letter.records(current)
        except DeadLetterError:
            self.group.withdraw(m.acknowledger.data for m in current)
            return [m for m in failed if m not in current]
        for message, letter in zip(current, letters, strict=True):
            transactions.stage(message.acknowledger.data, [letter])
        return failed

    def withdraw(self, ref: Any, messages: list[Message]) -> None:
        """Messages the pipeline gave up without acknowledging them: the group stops waiting for them
        (a stop or a rebalance does not wait for their acks) and commits nothing past them."""
        self.group.withdraw(m.acknowledger.data for m in messages)

    @staticmethod
    def partition_of(data: tuple[str, int, int, int]) -> tuple[str, int]:
        """The (topic, partition) a message came from, for the per-partition metrics."""
        return data[0], data[1]

    def is_stale(self, data: tuple[str, int, int, int]) -> bool:
        """True when the message's partition was given up since it was pulled
        (the drain timed out, or the membership was lost): its new owner reads
        it again, and handling it here could overwrite what that owner did.
        ``data`` is the acknowledger data (topic, partition, offset, epoch)."""
        topic, partition, offset, epoch = data
        return not self.group.is_current(topic, partition, epoch, offset)

    def stale_check(self) -> Callable[[tuple[str, int, int, int]], bool]:
        """is_stale as the processors call it before every handle_message: the group's own check, one
        call per message instead of the three through is_stale (see gkbroad.producer)."""
        return self.group.stale_check()

    def pause(self, data: tuple[str, int, int, int], seconds: float | None, reason: str) -> None:
        """A handler raised PausePartition for this message: its partition rewinds to it and is
        not read for `seconds` (None: until Pipeline.resume_partition); see ConsumerGroup.pause_partition."""
        topic, partition, offset, epoch = data
        if not self.group.pause_partition(topic, partition, offset, epoch, seconds, reason):
            # Stale, or its partition is being given up: a drain must not wait for it, nor commit past it.
            self.group.withdraw([data])

    def prepare_for_draining(self) -> None:
        self.draining.set()


def _check_retry_mode(pipeline_options: dict[str, Any], retry_topic: dict[str, Any] | None) -> None:
    """retry.mode "topic" and the retry_topic option go together."""
    retry = ((pipeline_options.get("processors") or {}).get("default") or {}).get("retry") or {}
    wants_topic = retry.get("mode") == "topic"
    if wants_topic and retry_topic is None:
        raise ConfigError(
            "processors.default.retry.mode: 'topic' parks failed attempts in a retry topic; set the Kafka "
            f"producer's {OPTIONS_PATH}.retry_topic option (e.g. {{'topic': 'orders.retry', 'create': True}})"
        )
    if retry_topic is not None and not wants_topic:
        raise ConfigError(
            f"{OPTIONS_PATH}.retry_topic: is only used with processors.default.retry.mode = 'topic' "
            f"(the mode is {retry.get('mode', 'not set')!r}); set that mode or remove retry_topic"
        )


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
