"""Transactions: exactly once from Kafka to Kafka, through a commit barrier.

With the ``exactly_once`` option, a message's outputs (gkbroad.kafka.outputs)
and, for a failed message, its dead letter are *staged* here when the message
is acknowledged, before the group's OffsetTracker hears of the ack. Nothing
is produced yet. The group's committer then works as always (coalesced
commits, one in flight per partition, the final commits of revoked
partitions, the stop's), but each commit of ``{partition: last processed
offset}`` goes through ``commit`` below, the barrier:

1. take the staged records of those partitions, of the epoch held now, whose
   input offset is at or below the offset being committed: exactly the
   messages the commit covers (everything at or below it was acknowledged,
   and staging precedes the ack);
2. in one transaction: produce them, in input offset order per partition, then
   ``send_offsets_to_transaction`` with the member's group metadata (KIP-447),
   then commit;
3. only after the commit are the records unstaged and the offsets booked.

Staged records above the commit stay for a later transaction; those of an
earlier epoch (the partition was reassigned) are dropped, since the new owner
handles their messages again. A commit with no record to write is not a
transaction: its offsets go through the consumer's ordinary commit, which
is as atomic (there is nothing to be atomic with) and as fenced (it carries
the generation); Tansu drops offset-only transactions after the first.

Every step runs in a greenlet joined for at most ``timeout``: a step that
does not return in time is abandoned, the writer breaks for good, and the
pipeline fails (nothing is acknowledged past it; the next start's
init_transactions aborts what was left open). A step that fails is aborted
(the staged records stay, the committer tries again); a fatal error or an
abort that fails breaks the writer too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from ..errors import GkbroadError
from .client import (
    FATAL_TRANSACTION_ERRORS,
    CommitFuture,
    GroupClient,
    TransactionalClient,
    WriterConnection,
    transactional_client,
)
from .outputs import OutputRecord

__all__ = ["TransactionAborted", "TransactionBroken", "Transactions"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Records staged at most before the acknowledging greenlets wait for a transaction to take some:
# an ack returns at once with exactly-once on, so without a bound the staged records would grow as
# fast as handlers run whenever transactions are slower.
MAX_STAGED_RECORDS = 10_000

Staged = dict[tuple[int, int], list[OutputRecord]]  # (epoch, input offset) -> its records


class TransactionAborted(GkbroadError):
    """A transaction was aborted: its records and offsets were discarded; the commit is tried again."""


class TransactionBroken(GkbroadError):
    """No more transactions: a step timed out, the producer was fenced, or an abort failed."""


class Transactions:
    """The exactly-once writer of one Kafka producer stage (a service of its pipeline).

    `producer` is the transactional client; `group` the ConsumerGroup whose
    commits become transactions (``bind`` connects the two). `timeout` is the
    most seconds one step of a transaction may take.
    """

    def __init__(self, producer: TransactionalClient, transactional_id: str, timeout: float):
        self.transactional_id = transactional_id
        self.timeout = timeout
        self.failure: str | None = None
        self.state = "new"  # new -> ready -> open -> committing -> ready; aborting -> ready; broken
        self.committed = 0  # transactions committed
        self.aborted = 0  # transactions aborted
        self.offset_only = 0  # commits with no records, sent as ordinary offset commits
        self.seconds = 0.0  # time spent in committed transactions
        self.last_duration: float | None = None
        self._producer = producer
        self._staged: dict[tuple[str, int], Staged] = {}
        self._staged_count = 0
        self._room = Event()
        self._room.set()
        self._one_at_a_time = Semaphore()
        self._report: Callable[[str], None] | None = None
        self._client: GroupClient[Any] | None = None
        self._is_current: Callable[[str, int, int], bool] = lambda topic, partition, epoch: False
        self.dead_letter_topic: str | None = None  # set by the Kafka producer when it has a dead_letter
        self._on_dead_letters: Callable[[int], None] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], connection: WriterConnection) -> Transactions:
        """The writer for a validated `exactly_once` option: it produces through the consumer's library
        and connects with the connection settings of `connection` (the consumer's `client`), updated
        with its own ``client``."""
        transactional_id = options["transactional_id"]
        settings = connection.producer_settings(f"gkbroad-{transactional_id}", options["client"])
        timeout = options["timeout"] / 1000
        producer = transactional_client(connection.library, settings, transactional_id, timeout)
        return cls(producer, transactional_id, timeout)

    def bind(self, client: GroupClient[Any], is_current: Callable[[str, int, int], bool]) -> None:
        """The group's client (its commits, futures and group metadata) and its epoch check."""
        self._client = client
        self._is_current = is_current

    # ------------------------------------------------------------ service

    def supervise(self, report: Callable[[str], None]) -> None:
        self._report = report
        if self.failure is not None:
            report(self.failure)

    def report_dead_letters(self, observer: Callable[[int], None]) -> None:
        """Call ``observer(count)`` after each committed transaction that wrote dead letters (records to
        `dead_letter_topic`); the pipeline passes its hooks' after_dead_letter."""
        self._on_dead_letters = observer

    def start(self) -> None:
        """Initialise the producer in the background: it aborts what a previous run left open."""
        gevent.spawn(self._initialise_quietly)

    def stop(self, timeout: float) -> bool:
        """Close the producer once the group's final commits are done (the group stops first) and
        the transaction in progress, if any, ended (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        idle = self._one_at_a_time.acquire(timeout=timeout)
        try:
            self._producer.close(max(deadline - time.monotonic(), 0.0))
        finally:
            if idle:
                self._one_at_a_time.release()
        return self.failure is None and idle

    # ------------------------------------------------------------ staging

    def stage(self, data: tuple[str, int, int, int], records: list[OutputRecord]) -> None:
        """Keep the records of the message with acknowledger data `data` (topic, partition, offset,
        epoch) for the transaction that commits its offset. Call it before acknowledging the message."""
        if records:
            topic, partition, offset, epoch = data
            self._staged.setdefault((topic, partition), {})[(epoch, offset)] = records
            self._count(len(records))

    def wait_for_room(self) -> None:
        """Block while MAX_STAGED_RECORDS are staged (call it after the ack, so that the messages whose
        acks let a transaction take the staged records are never the ones waiting), unless broken."""
        while not self._room.is_set() and self.failure is None:
            self._room.wait(1.0)

    def staged_records(self) -> int:
        return self._staged_count

    def _count(self, change: int) -> None:
        self._staged_count += change
        if self._staged_count >= MAX_STAGED_RECORDS:
            self._room.clear()
        else:
            self._room.set()

    def _take(self, offsets: dict[Any, int]) -> list[tuple[Staged, tuple[int, int], list[OutputRecord]]]:
        """The staged records the commit of `offsets` covers, in input order per partition. The
        records of epochs no longer held (of any partition) are dropped first."""
        for (topic, partition), staged in self._staged.items():
            for key in [key for key in staged if not self._is_current(topic, partition, key[0])]:
                self._count(-len(staged.pop(key)))
        taken = []
        for tp, last in offsets.items():
            staged = self._staged.get((tp.topic, tp.partition)) or {}
            taken += [(staged, key, staged[key]) for key in sorted(staged) if key[1] <= last]
        return taken

    # ------------------------------------------------------------ the barrier

    def commit(self, offsets: dict[Any, int], timeout: float | None = None) -> CommitFuture:
        """The group's commit of {tp: last processed offset}: a transaction with the records it covers
        (see the module docstring). Returns a future of the group's client at once."""
        client = self._bound()
        future: CommitFuture = client.new_future()
        gevent.spawn(self._commit, client, offsets, timeout, future)
        return future

    def _commit(self, client: GroupClient[Any], offsets: dict[Any, int], timeout: float | None, future: Any) -> None:
        error: BaseException | None = None
        with self._one_at_a_time:
            try:
                taken = self._take(offsets)
                if taken:
                    written = [record for _, _, records in taken for record in records]
                    self._transact(written, offsets)
                    self._report_dead_letters(written)
                    for staged, key, records in taken:
                        if staged.pop(key, None) is not None:
                            self._count(-len(records))
                else:
                    self._commit_offsets(client, offsets, timeout)
            except Exception as exc:
                error = exc
        client.resolve_soon(future, error)

    def _report_dead_letters(self, written: list[OutputRecord]) -> None:
        if self._on_dead_letters is None or self.dead_letter_topic is None:
            return
        letters = sum(1 for record in written if record.topic == self.dead_letter_topic)
        if letters:
            self._on_dead_letters(letters)

    def _transact(self, records: list[OutputRecord], offsets: dict[Any, int]) -> None:
        if self.failure is not None:
            raise TransactionBroken(self.failure)
        started = time.monotonic()
        self._initialise()
        self._step("begin", self._producer.begin)
        self.state = "open"
        try:
            self._step("send", lambda: self._producer.send(records))
            self._step("send_offsets", lambda: self._producer.send_offsets(offsets, self._bound().group_metadata()))
            self.state = "committing"
            self._step("commit", self._producer.commit)
        except TransactionBroken:
            raise
        except Exception as exc:
            self._abort(exc, len(records))
        self.state = "ready"
        self.committed += 1
        self.last_duration = time.monotonic() - started
        self.seconds += self.last_duration

    def _abort(self, exc: BaseException, records: int) -> None:
        """The transaction failed with `exc`: abort it (bounded), then raise TransactionAborted."""
        if isinstance(exc, FATAL_TRANSACTION_ERRORS):
            self._break(f"transaction of {self.transactional_id!r} failed for good: {_describe(exc)}")
        self.state = "aborting"
        logger.warning(
            "transaction of %r with %d record(s) failed (%s); aborting it",
            self.transactional_id,
            records,
            _describe(exc),
        )
        try:
            self._step("abort", self._producer.abort)
        except TransactionBroken:
            raise
        except Exception as abort_exc:
            self._break(f"aborting a transaction of {self.transactional_id!r} failed: {_describe(abort_exc)}")
        self.state = "ready"
        self.aborted += 1
        raise TransactionAborted(f"transaction aborted after {_describe(exc)}") from exc

    def _commit_offsets(self, client: GroupClient[Any], offsets: dict[Any, int], timeout: float | None) -> None:
        """Offsets with no record to go with them: the consumer's own commit, waited for in the barrier
        so that no transaction overtakes it."""
        inner = client.commit(offsets, timeout)
        finished = Event()
        inner.add_both(lambda _: finished.set())
        if not finished.wait(self.timeout if timeout is None else min(timeout, self.timeout)):
            raise GkbroadError(f"the offset commit got no answer within {self.timeout:.1f} s")
        if inner.failed():
            raise inner.exception or GkbroadError("the offset commit failed")
        self.offset_only += 1

    # ------------------------------------------------------------ steps

    def _initialise(self) -> None:
        if self.state == "new":
            self._step("init_transactions", self._producer.init)
            self.state = "ready"

    def _initialise_quietly(self) -> None:
        with self._one_at_a_time:
            try:
                self._initialise()
            except TransactionBroken:
                pass  # reported
            except Exception as exc:
                logger.warning("initialising transactions failed (%s); the first commit tries again", _describe(exc))

    def _step(self, name: str, call: Callable[[], _T]) -> _T:
        """Run one step of kafka-python in a greenlet, waiting at most `timeout`; past it the step is
        abandoned and the writer breaks."""
        if self.failure is not None:
            raise TransactionBroken(self.failure)
        step = gevent.spawn(call)
        step.join(self.timeout)
        if not step.ready():
            step.kill(block=False)
            self._break(
                f"{name} of transactional_id {self.transactional_id!r} did not return within {self.timeout:.1f} s"
            )
        if step.exception is not None:
            raise step.exception
        return step.get()

    def _break(self, reason: str) -> NoReturn:
        if self.failure is None:
            self.failure = reason
            self.state = "broken"
            logger.error("%s; no more transactions, nothing is acknowledged past them", reason)
            if self._report is not None:
                self._report(reason)
        raise TransactionBroken(self.failure)

    def _bound(self) -> GroupClient[Any]:
        if self._client is None:
            raise GkbroadError("Transactions.bind was not called: no consumer group to commit for")
        return self._client

    def stats(self) -> dict[str, Any]:
        """For status pages and metrics."""
        return {
            "transactional_id": self.transactional_id,
            "state": self.state,
            "committed": self.committed,
            "aborted": self.aborted,
            "offset_only": self.offset_only,
            "seconds": self.seconds,
            "last_duration": self.last_duration,
            "staged_records": self.staged_records(),
            "failure": self.failure,
        }

    def __repr__(self) -> str:
        return f"<Transactions {self.transactional_id!r} {self.state}>"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
