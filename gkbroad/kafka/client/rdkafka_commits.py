"""Offset commits of LibrdkafkaClient: every one sent by the poll greenlet, answered through futures.

Why the poll greenlet sends them all: only that greenlet may call into the
binding (see rdkafka_consumer), and a synchronous commit made from a thread
of gevent's pool never completes while the poll greenlet is inside
librdkafka's revoke callback (probed: no answer within 10 s, against under a
millisecond for the same commit made inside the callback). So ``add`` only
queues a commit and wakes the poll greenlet, which sends what is queued

- between two ``consume()`` calls, asynchronously: ``on_commit`` (served by
  the next ``consume()``) resolves the commit's future;
- inside the revoke callback (and while ``close`` releases the partitions),
  synchronously, as the rebalance handler waits: ``on_commit`` is not served
  there, so an asynchronous commit would stay unanswered until the callback
  returned. That commit holds the hub for one round trip to the coordinator.

An asynchronous commit still unanswered when the revoke callback starts is
not waited for there: the callback's own commit is sent after it on the same
coordinator connection and carries offsets at least as high, so it counts as
superseded. Every commit fails after its timeout, and a commit queued before
the membership was lost is never sent.

A synchronous commit with no coordinator to answer it holds the OS thread,
hence the hub, until librdkafka gives up waiting for one (probed: about 7 s
with the broker gone, whatever the socket timeout), so a stop or a drain with
the brokers down would overrun its budget. The client says when no
coordinator is up (``refusal``), and such a commit fails at once instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from kafka.future import Future

from .consumer import KafkaError
from .rdkafka_support import kafka_error

__all__ = ["Commits"]

logger = logging.getLogger(__name__)


def _key(partitions: list[Any]) -> tuple[tuple[str, int, int], ...]:
    """What identifies one commit in its ``on_commit`` answer: its partitions and offsets."""
    return tuple(sorted((p.topic, p.partition, p.offset) for p in partitions))


class Commits:
    """The commits of one consumer: queued by any greenlet, sent by the poll greenlet.

    ``wake`` is set whenever the poll greenlet has something to do: a commit
    queued, or a future of this client finished (a waiting revoke looks again).
    ``losses()`` counts the memberships lost so far.
    """

    def __init__(self, module: Any, losses: Callable[[], int]):
        self._module = module
        self._losses = losses
        self._queued: list[tuple[list[Any], Future, int]] = []
        self._sent: dict[tuple[tuple[str, int, int], ...], list[Future]] = {}
        self.wake = Event()

    def watch(self, future: Future) -> Future:
        """Have ``future``'s end wake the poll greenlet; returns it."""
        future.add_both(lambda _: self.wake.set())
        return future

    def add(self, to_send: list[Any], timeout: float) -> Future:
        """Queue a commit of ``to_send`` (confluent-kafka TopicPartitions at the offsets to store)."""
        future = self.watch(Future())
        self._queued.append((to_send, future, self._losses()))
        gevent.spawn_later(timeout, self._expire, future, timeout)
        self.wake.set()
        return future

    @staticmethod
    def _expire(future: Future, timeout: float) -> None:
        if not future.is_done:
            future.failure(KafkaError(f"no answer to the offset commit within {timeout:.1f} s"))

    def send(self, consumer: Any, synchronously: bool, refusal: str | None = None) -> None:
        """Send what is queued (on the poll greenlet only); with ``refusal`` (why no coordinator can
        answer now) the synchronous commits fail with it, unsent."""
        while self._queued:
            to_send, future, losses = self._queued.pop(0)
            if future.is_done:
                continue
            if losses != self._losses():
                future.failure(KafkaError("the membership was lost since the commit was asked for; not sent"))
                continue
            if synchronously and refusal is not None:
                future.failure(KafkaError(f"offset commit not sent: {refusal}"))
                continue
            try:
                if synchronously:
                    self._finish(future, consumer.commit(offsets=to_send, asynchronous=False), None)
                else:
                    consumer.commit(offsets=to_send, asynchronous=True)
                    self._sent.setdefault(_key(to_send), []).append(future)
            except self._module.KafkaException as exc:
                future.failure(kafka_error(exc.args[0]))

    def answered(self, error: Any, partitions: list[Any]) -> None:
        """librdkafka's ``on_commit``: resolve the future of the commit it answers."""
        key = _key(partitions or [])
        waiting = self._sent.get(key)
        if not waiting:
            return
        future = waiting.pop(0)
        if not waiting:
            del self._sent[key]
        self._finish(future, partitions, error)

    def _finish(self, future: Future, partitions: list[Any] | None, error: Any) -> None:
        if future.is_done:
            return
        refused = [p.error for p in partitions or () if p.error is not None]
        if error is not None or refused:
            future.failure(kafka_error(error if error is not None else refused[0]))
        else:
            future.success(None)

    def superseded(self, future: Future) -> bool:
        """True for an asynchronous commit still waiting for its answer (see the module docstring)."""
        return any(future in waiting for waiting in self._sent.values())

    def abandon(self) -> None:
        """The consumer is closing: every commit not answered yet fails."""
        pending = [future for _, future, _ in self._queued] + [f for waiting in self._sent.values() for f in waiting]
        self._queued.clear()
        self._sent.clear()
        for future in pending:
            if not future.is_done:
                future.failure(KafkaError("the consumer closed before the commit was answered"))
