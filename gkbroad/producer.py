"""The producer protocol: what a class must do to feed a pipeline.

Modelled on Broadway.Producer, in blocking greenlet style. The pipeline calls,
in order:

1. ``cls.prepare_for_start(options, pipeline_options)`` once, when the
   pipeline is constructed. It validates the producer's own `options` (raise
   ConfigError on bad ones), and returns ``(services, pipeline_options)``:
   the services the pipeline starts before the producers and stops after
   every message was acknowledged (see below), and the pipeline options,
   possibly rewritten (the producer's own options live in
   ``pipeline_options["producer"]["module"][1]``; that is how state such as a
   shared service reaches ``__init__``).
2. ``cls(options, index=i, count=n)`` for each of the `concurrency` producer
   greenlets.
3. ``receive(demand)`` repeatedly: return a list of at most `demand` messages,
   those that are ready now. The demand is reserved for it while it runs, so
   it should not wait long for data. A producer that defines
   ``receive_chunks(demand, chunk_size)`` is asked that instead: the same
   messages as a list of chunks of at most `chunk_size` messages (what a
   processor takes at once, its `max_demand`), each a list of messages that
   share one acknowledger handler and ref (for Kafka: the records one
   partition gave in one pull). A chunk travels as one unit: routed once,
   queued once, handled in order by one processor greenlet (split by lane
   first when partition_by gives its messages different lanes) and
   acknowledged in one ``ack`` call, so little is done per message but the
   handler call. Without it, what ``receive`` returns is cut into runs of at
   most `chunk_size` messages that share an acknowledger.
4. ``idle()`` after a ``receive`` that returned nothing, with no demand
   reserved: block until messages may be ready, or about a second (return at
   once after ``prepare_for_draining``). A producer without a useful idle()
   must wait in receive instead, or the stage spins.
5. ``prepare_for_draining()`` once, when the pipeline stops: from then on
   ``receive`` is not called again; messages already returned are processed
   and acknowledged.

A service has ``start()`` and ``stop(timeout) -> bool``: stop must return
within `timeout` seconds (what is left of the pipeline's stop budget) and
return False when it could not finish cleanly (for Kafka: acknowledged offsets
were not committed), which makes the pipeline's stop unclean; None counts as
clean. It may offer ``supervise(report)``, called before ``start()``: calling
``report(reason)`` later (from any greenlet) marks the pipeline failed and
stops it, for a service that can no longer work. A service that commits
offsets may offer ``report_commits(observer)``, also called before
``start()``: it calls ``observer(seconds, [(topic, partition), ...])`` after
each commit, which reaches the hooks' ``after_commit``; in the same way
``report_dead_letters(observer)`` calls ``observer(count)`` after dead letters
were written, ``report_retries(observer)`` calls ``observer("topic", count)``
after failed attempts were written to a retry topic, and
``report_rebalances(observer)`` calls ``observer(topic, partition, reason)``
when a partition is assigned or given up.

Each message carries an Acknowledger whose handler's ``ack(ref, successful,
failed)`` is called once per message, after processing, by the processor or
batch processor that finished it (never by the producer greenlets). The
handler may also define ``is_stale(data) -> bool``: a message for which it
answers True (for Kafka: its partition was given to another member since) is
not handed to prepare_messages, handle_message or handle_batch; it is
acknowledged as failed ("revoked") without going through handle_failed.
A handler whose check can be made cheaper may also define ``stale_check()``,
returning a function that gives the same answers as ``is_stale`` for as long
as the pipeline runs: the processors take it once and call it before each
handle_message.
It may define ``partition_of(data) -> (topic, partition)``, which the
per-partition metrics (the hooks' ``after_ack_by_partition``) label messages
with. It may define ``withdraw(ref, messages)`` too: called for messages that will
never be acknowledged in this run (a stop ended their retry's wait, or their
dead letters could not be written), so that it stops waiting for them, but must
not treat them as done (for Kafka: nothing is committed past them). And it may
define ``pause(data, seconds, reason)``, called when a handler raised
``gkbroad.PausePartition`` for the message: the message is then neither
acknowledged nor failed, and the handler must deliver it again once the pause
ends (for Kafka: its partition rewinds to it). A service that can end such a
pause early offers ``resume_partition(topic, partition) -> bool``, which
``Pipeline.resume_partition`` calls.

The same contract as types, for type checkers and editors: what is required
is a Protocol (`ProducerProtocol`, `ProducerClass`, `Service`), and each
optional method has a Protocol of its own (`SupportsIdle`, ...), since the
pipeline calls it only where it is defined. `BaseProducer` implements the
producer's side with no-op optional methods; a class that does not derive
from it can list the Protocols it implements as bases to have its methods'
signatures checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .message import Message

__all__ = [
    "BaseProducer",
    "ProducerClass",
    "ProducerProtocol",
    "Service",
    "SupportsDraining",
    "SupportsIdle",
    "SupportsPrepareForStart",
    "SupportsReceiveChunks",
    "SupportsReportCommits",
    "SupportsReportDeadLetters",
    "SupportsReportRebalances",
    "SupportsReportRetries",
    "SupportsSupervise",
]


class ProducerProtocol(Protocol):
    """A producer instance, one per producer greenlet (step 3 above)."""

    def receive(self, demand: int) -> list[Message]:
        """At most ``demand`` messages, those ready now."""


class SupportsReceiveChunks(Protocol):
    def receive_chunks(self, demand: int, chunk_size: int) -> list[list[Message]]:
        """At most ``demand`` messages in all, as chunks of at most ``chunk_size`` that each share
        one acknowledger (step 3)."""


class SupportsIdle(Protocol):
    def idle(self) -> None:
        """Block after an empty receive until messages may be ready, or about a second (step 4)."""


class SupportsDraining(Protocol):
    def prepare_for_draining(self) -> None:
        """The pipeline stops: ``receive`` is not called again (step 5)."""


class Service(Protocol):
    """What ``prepare_for_start`` may return for the pipeline to start before
    the producers and stop after every message was acknowledged."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool | None:
        """Return within ``timeout`` seconds; False when it could not finish cleanly."""


class SupportsSupervise(Protocol):
    def supervise(self, report: Callable[[str], None]) -> None:
        """Called before ``start()``: ``report(reason)`` later marks the pipeline failed and stops it."""


class SupportsReportCommits(Protocol):
    def report_commits(self, observer: Callable[[float, list[tuple[str, int]]], None]) -> None:
        """Called before ``start()``: call ``observer(seconds, [(topic, partition), ...])`` after each commit."""


class SupportsReportDeadLetters(Protocol):
    def report_dead_letters(self, observer: Callable[[int], None]) -> None:
        """Called before ``start()``: call ``observer(count)`` after dead letters were written."""


class SupportsReportRetries(Protocol):
    def report_retries(self, observer: Callable[[str, int], None]) -> None:
        """Called before ``start()``: call ``observer("topic", count)`` after failed attempts were written
        to a retry topic."""


class SupportsReportRebalances(Protocol):
    def report_rebalances(self, observer: Callable[[str, int, str], None]) -> None:
        """Called before ``start()``: call ``observer(topic, partition, reason)`` when a partition is
        assigned ("assigned") or given up ("revoked", "lost", "shutdown")."""


class ProducerClass(Protocol):
    """The ``producer.module`` class: built once per producer greenlet (step 2)."""

    def __call__(self, options: dict[str, Any], *, index: int, count: int) -> ProducerProtocol: ...


class SupportsPrepareForStart(Protocol):
    """The ``producer.module`` class's optional class method (step 1)."""

    def prepare_for_start(
        self, options: dict[str, Any], pipeline_options: dict[str, Any]
    ) -> tuple[list[Service], dict[str, Any]]: ...


class BaseProducer(ProducerProtocol, SupportsIdle, SupportsDraining):
    """Convenience base class with the optional parts of the protocol."""

    @classmethod
    def prepare_for_start(
        cls, options: dict[str, Any], pipeline_options: dict[str, Any]
    ) -> tuple[list[Service], dict[str, Any]]:
        return [], pipeline_options

    def __init__(self, options: dict[str, Any], *, index: int, count: int):
        self.options = options
        self.index = index
        self.count = count

    def receive(self, demand: int) -> list[Message]:
        raise NotImplementedError(f"{type(self).__name__} must implement receive(demand)")

    def idle(self) -> None:
        """Wait for messages to become ready after an empty receive (see the protocol above)."""

    def prepare_for_draining(self) -> None:
        """Called once when the pipeline stops; wake up a blocked receive or idle here."""
