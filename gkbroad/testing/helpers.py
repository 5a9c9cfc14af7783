"""Run a pipeline without a broker: push test messages, wait for their acknowledgement.

    from gkbroad import testing

    with testing.running(Orders, name="orders-test", processors={"default": {}}) as pipeline:
        ref = testing.test_message(pipeline, {"id": 1})
        successful, failed = testing.wait_for_ack(pipeline, ref)

`running` swaps the pipeline's producer for DummyProducer (any options you pass
for the real producer are dropped), so the same Pipeline subclass that reads
Kafka in production is tested on plain data. Every callback, batcher and
acknowledgement path is the real one.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from gevent.event import Event
from gevent.queue import Empty, Queue

from ..config.redact import redacted_repr
from ..errors import ConfigError, GkbroadError, PipelineStateError
from ..message import Acknowledger, Message
from ..pipeline import Pipeline
from ..producer import BaseProducer, Service

__all__ = ["AckTimeout", "DummyProducer", "running", "test_batch", "test_message", "wait_for_ack"]

_refs = itertools.count(1)


class AckTimeout(GkbroadError, TimeoutError):
    """wait_for_ack gave up: not every message of the ref was acknowledged in time."""


class TestAcknowledger:
    """Collects acknowledgements per ref until all messages of that ref came back."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._expected: dict[int, int] = {}
        self._acked: dict[int, tuple[list[Message], list[Message]]] = {}
        self._complete: dict[int, Event] = {}

    def expect(self, ref: int, count: int) -> None:
        self._expected[ref] = count
        self._acked[ref] = ([], [])
        self._complete[ref] = Event()

    def ack(self, ref: int, successful: list[Message], failed: list[Message]) -> None:
        ok, bad = self._acked[ref]
        ok.extend(successful)
        bad.extend(failed)
        if len(ok) + len(bad) >= self._expected[ref]:
            self._complete[ref].set()

    def wait(self, ref: int, timeout: float) -> tuple[list[Message], list[Message]]:
        if ref not in self._complete:
            raise GkbroadError(f"unknown test ref {ref!r}; use the value test_message or test_batch returned")
        if not self._complete[ref].wait(timeout):
            ok, bad = self._acked[ref]
            raise AckTimeout(
                f"ref {ref}: {len(ok) + len(bad)} of {self._expected[ref]} messages acknowledged after {timeout}s"
            )
        self._complete.pop(ref)
        self._expected.pop(ref)
        return self._acked.pop(ref)


class TestChannel:
    """The DummyProducer's shared service: a queue that test_message fills."""

    __test__ = False

    def __init__(self) -> None:
        self.queue: Queue[Message] = Queue()
        self.acknowledger = TestAcknowledger()
        self.draining = Event()

    def push(self, messages: list[Message]) -> None:
        if self.draining.is_set():
            raise PipelineStateError("the pipeline is stopping; it does not take test messages any more")
        for message in messages:
            self.queue.put(message)

    def start(self) -> None:
        """Nothing to start: the queue exists from construction."""

    def stop(self, timeout: float) -> bool:
        """Nothing to release: always clean."""
        return True


class DummyProducer(BaseProducer):
    """A producer whose messages come from test_message / test_batch."""

    POLL_INTERVAL = 0.05

    @classmethod
    def prepare_for_start(
        cls, options: dict[str, Any], pipeline_options: dict[str, Any]
    ) -> tuple[list[Service], dict[str, Any]]:
        if options:
            raise ConfigError(f"producer.module: DummyProducer takes no options, got {redacted_repr(options)}")
        channel = TestChannel()
        pipeline_options["producer"]["module"] = (cls, {"channel": channel})
        return [channel], pipeline_options

    def __init__(self, options: dict[str, Any], *, index: int, count: int):
        super().__init__(options, index=index, count=count)
        self.channel: TestChannel = options["channel"]

    def receive(self, demand: int) -> list[Message]:
        queue = self.channel.queue
        messages: list[Message] = []
        while len(messages) < demand and not queue.empty():
            messages.append(queue.get_nowait())
        return messages

    def idle(self) -> None:
        with contextlib.suppress(Empty):
            self.channel.queue.peek(timeout=self.POLL_INTERVAL)

    def prepare_for_draining(self) -> None:
        self.channel.draining.set()


def _channel(pipeline: Pipeline) -> TestChannel:
    for service in pipeline.services:
        if isinstance(service, TestChannel):
            return service
    raise GkbroadError(
        f"pipeline {pipeline.name!r} does not use gkbroad.testing.DummyProducer; build it with testing.running()"
    )


def _push(pipeline: Pipeline, data: Iterable[Any], metadata: dict[str, Any] | None, batch_mode: str) -> int:
    channel = _channel(pipeline)
    ref = next(_refs)
    ack = channel.acknowledger
    messages = [
        Message(data=item, acknowledger=Acknowledger(ack, ref, None), metadata=dict(metadata or {})).put_batch_mode(
            batch_mode
        )
        for item in data
    ]
    ack.expect(ref, len(messages))
    channel.push(messages)
    return ref


def test_message(
    pipeline: Pipeline, data: Any, metadata: dict[str, Any] | None = None, batch_mode: str = "flush"
) -> int:
    """Send one message through the pipeline; returns the ref to wait_for_ack on.

    Its batch_mode defaults to "flush", so it does not wait for batch_timeout.
    """
    return _push(pipeline, [data], metadata, batch_mode)


def test_batch(
    pipeline: Pipeline, data: Iterable[Any], metadata: dict[str, Any] | None = None, batch_mode: str = "bulk"
) -> int:
    """Send several messages at once under one ref; wait_for_ack returns when all were acknowledged."""
    return _push(pipeline, data, metadata, batch_mode)


def wait_for_ack(pipeline: Pipeline, ref: int, timeout: float = 5.0) -> tuple[list[Message], list[Message]]:
    """Block until every message sent under `ref` was acknowledged; returns (successful, failed)."""
    return _channel(pipeline).acknowledger.wait(ref, timeout)


test_message.__test__ = False  # type: ignore[attr-defined]
test_batch.__test__ = False  # type: ignore[attr-defined]


@contextlib.contextmanager
def running(pipeline_cls: type[Pipeline], **options: Any) -> Iterator[Pipeline]:
    """Build `pipeline_cls` with DummyProducer as its producer, start it, stop it on exit."""
    producer = dict(options.pop("producer", None) or {})
    producer["module"] = DummyProducer
    pipeline = pipeline_cls(producer=producer, **options)
    pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()
