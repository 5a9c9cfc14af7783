"""Shared pieces of the engine's unit tests: a recording pipeline, a counting
acknowledger, a lazy producer that follows gkbroad/producer.py's protocol, and
the shared waits come from tests/helpers/support.py. Fixtures that start pipelines live in tests/unit/conftest.py."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent

import gkbroad
from gkbroad import Acknowledger, BaseProducer, BatchInfo, Message


def stage_greenlet(pipeline: gkbroad.Pipeline, stage: str) -> gevent.Greenlet:
    """The greenlet of a running pipeline's stage, named without the pipeline's name:
    "producer.0", "processor.0", "batcher.default", "batch_processor.default.0"."""
    return pipeline.stage_greenlets[f"{pipeline.name}.{stage}"]


@dataclass
class BatchCall:
    batcher: str
    data: list
    info: BatchInfo
    greenlet: Any


class RecordingPipeline(gkbroad.Pipeline):
    """Passes every message through and records every callback call.

    Tests subclass it and override `on_message` / `on_batch` (what the handler
    does) rather than the callbacks, so the recording stays in one place.
    """

    def __init__(self, **options: Any):
        self.handled: list[tuple[Any, Any]] = []  # (greenlet, data), in call order
        self.batches: list[BatchCall] = []
        self.failed_calls: list[list[Message]] = []
        super().__init__(**options)

    def handle_message(self, processor, message, context):
        self.handled.append((gevent.getcurrent(), message.data))
        return self.on_message(message)

    def handle_batch(self, batcher, messages, batch_info, context):
        self.batches.append(BatchCall(batcher, [m.data for m in messages], batch_info, gevent.getcurrent()))
        return self.on_batch(messages, batch_info)

    def handle_failed(self, messages, context):
        self.failed_calls.append(list(messages))
        return messages

    def on_message(self, message: Message) -> Message:
        return message

    def on_batch(self, messages: list[Message], info: BatchInfo) -> list[Message]:
        return messages

    @property
    def failed_counts(self) -> Counter:
        """How many times handle_failed saw each message (by data)."""
        return Counter(m.data for call in self.failed_calls for m in call)


def kafka_config_error(options: dict[str, Any]) -> str:
    """The ConfigError message of a pipeline whose Kafka producer has ``options``."""
    from gkbroad.kafka import Producer

    try:
        RecordingPipeline(name="k", producer={"module": (Producer, options)}, processors={"default": {}})
    except gkbroad.ConfigError as error:
        return str(error)
    raise AssertionError(f"no ConfigError for {options!r}")


class CountingAcknowledger:
    """Counts acknowledgements per message and records every ack() call."""

    def __init__(self):
        self.calls: list[tuple[Any, list[Message], list[Message]]] = []
        self.acks: Counter = Counter()  # id(message) -> times acknowledged
        self.successful: list[Message] = []
        self.failed: list[Message] = []
        self.on_ack: Callable[[], None] = lambda: None

    def ack(self, ref, successful, failed):
        self.calls.append((ref, list(successful), list(failed)))
        self.successful.extend(successful)
        self.failed.extend(failed)
        for message in (*successful, *failed):
            self.acks[id(message)] += 1
        self.on_ack()

    @property
    def acked(self) -> int:
        return len(self.successful) + len(self.failed)


class Source:
    """Lazily turns an iterable of data into messages, and keeps the books on them.

    Shared by every SourceProducer greenlet of a pipeline. It records how many
    messages were produced, the largest number ever produced but not yet
    acknowledged (checked at every receive() and every ack), and each message
    produced, so a test can check every one was acknowledged exactly once.
    """

    def __init__(self, data: Iterable[Any] = (), ref: Callable[[Any], Any] = lambda data: "ref"):
        self._data = iter(data)
        self.idle_wait: Callable[[], Any] = lambda: gevent.sleep(0.01)  # what receive() does when empty
        self._ref = ref
        self.acknowledger = CountingAcknowledger()
        self.acknowledger.on_ack = self._check_outstanding
        self.produced: list[Message] = []
        self.max_outstanding = 0
        self.demands: list[int] = []

    @property
    def outstanding(self) -> int:
        return len(self.produced) - self.acknowledger.acked

    def _check_outstanding(self) -> None:
        self.max_outstanding = max(self.max_outstanding, self.outstanding)

    def take(self, demand: int) -> list[Message]:
        self.demands.append(demand)
        batch = [
            Message(data=item, acknowledger=Acknowledger(self.acknowledger, self._ref(item), None))
            for item in itertools.islice(self._data, demand)
        ]
        self.produced.extend(batch)
        self._check_outstanding()
        return batch

    def assert_each_produced_message_acked_once(self) -> None:
        counts = Counter(self.acknowledger.acks[id(m)] for m in self.produced)
        assert counts == Counter({1: len(self.produced)}), f"messages by times acknowledged: {dict(counts)}"
        assert self.acknowledger.acked == len(self.produced), "acknowledged messages that were never produced"


class SourceProducer(BaseProducer):
    """Delivers what its Source yields; options: {"source": Source}.

    With `count` > 1 each greenlet takes from the same Source, so a test that
    needs data owned by one producer uses one Source per index: options
    {"sources": [Source, ...]}. When the Source is empty, receive() waits
    (Source.idle_wait) rather than spin, as the protocol asks.
    """

    def __init__(self, options, *, index, count):
        super().__init__(options, index=index, count=count)
        self.source: Source = options["sources"][index] if "sources" in options else options["source"]

    def receive(self, demand):
        batch = self.source.take(demand)
        if not batch:
            self.source.idle_wait()
        return batch


class ServiceProducer(SourceProducer):
    """A SourceProducer whose prepare_for_start hands the pipeline the service in ``options["service"]``."""

    @classmethod
    def prepare_for_start(cls, options, pipeline_options):
        return [options["service"]], pipeline_options
