"""Committer: the greenlets that send the offsets acknowledgements made committable.

``ConsumerGroup.ack``/``commit`` only move a partition's acknowledged offset
in the GroupState and wake the committer; ``count`` committer greenlets take
the dirty partitions (coalesced: one commit carries the latest offset of
each) and commit them through the client, never two commits of one partition
at once (they could land in the wrong order), and a partition at most once
per commit interval (GroupState.take_commits): at high rates every ack round
would otherwise cost a commit request. A failed commit is retried, with
backoff, while the partition stays held in the same epoch. The rebalancer's
final commit of a released partition goes through ``send`` too, so that every
commit is booked (and timed, for ``on_commit``) the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.event import Event

from ..client import REBALANCE_ERRORS, CommitFuture, GroupClient
from .grouplog import GroupLog, describe
from .state import CommitRequest, GroupState
from .timing import COMMIT_BACKOFF_MAX, Backoff

__all__ = ["Committer"]

logger = logging.getLogger(__name__)


class Committer:
    """Commits acknowledged offsets of ``state`` through ``client``."""

    def __init__(self, state: GroupState, client: GroupClient[Any], group_name: str, count: int):
        self._state = state
        self._client = client
        self._log = GroupLog(logger, group_name)
        self._count = count
        self._wanted = Event()
        self._stopped = Event()
        self._in_flight: dict[Any, CommitFuture] = {}  # tp -> future of its commit
        self.greenlets: list[gevent.Greenlet[[], None]] = []
        # Sends one commit: the client's, or the exactly-once writer's transaction (Transactions.commit).
        self.commit_offsets: Callable[[dict[Any, int], float | None], CommitFuture] = client.commit
        # Told (seconds, [(topic, partition), ...]) after each successful commit.
        self.on_commit: Callable[[float, list[tuple[str, int]]], None] | None = None

    def start(self) -> list[gevent.Greenlet[[], None]]:
        """Spawn the committer greenlets; returns them."""
        self.greenlets = [gevent.spawn(self._run) for _ in range(self._count)]
        return self.greenlets

    def wake(self) -> None:
        """Acknowledged offsets are waiting to be committed."""
        self._wanted.set()

    def stop(self) -> None:
        """End the greenlets after the commit each is waiting for, if any."""
        self._stopped.set()
        self._wanted.set()

    def in_flight(self, tps: Iterable[Any]) -> list[CommitFuture]:
        """Futures of the commits now in flight for these partitions."""
        futures = {self._in_flight[tp] for tp in tps if tp in self._in_flight}
        return [future for future in futures if not future.is_done]

    def send(self, request: CommitRequest, timeout: float | None = None) -> CommitFuture:
        """Start committing ``request`` (at most ``timeout`` seconds of
        retries); returns its future. The outcome is booked in the state when
        the future finishes. Raises when the client cannot even start it (the
        request is then booked as failed)."""
        started = time.monotonic()
        try:
            future: CommitFuture = self.commit_offsets(request.offsets, timeout)
        except Exception:
            self._state.commit_done(request, succeeded=False)
            raise
        for tp in request.offsets:
            self._in_flight[tp] = future
        future.add_both(lambda _: self._finished(request, future, started))
        return future

    def _finished(self, request: CommitRequest, future: CommitFuture, started: float) -> None:
        for tp in request.offsets:
            if self._in_flight.get(tp) is future:
                del self._in_flight[tp]
        succeeded = not future.failed()
        self._state.commit_done(request, succeeded)
        if succeeded:
            self._log.debug("committed %s", describe(request.offsets))
            if self.on_commit is not None:
                self._report(self.on_commit, time.monotonic() - started, request)
        if self._state.commits_wanted():
            self._wanted.set()

    def _report(
        self, observer: Callable[[float, list[tuple[str, int]]], None], duration: float, request: CommitRequest
    ) -> None:
        try:
            observer(duration, [(tp.topic, tp.partition) for tp in request.offsets])
        except Exception:
            self._log.exception("the commit observer raised; ignored")

    def _run(self) -> None:
        backoff = Backoff(COMMIT_BACKOFF_MAX)
        due_in = None  # seconds until a partition's commit interval is over
        while True:
            self._wanted.wait(due_in)
            if self._stopped.is_set():
                return
            request = self._state.take_commits(time.monotonic())
            if not request:
                self._wanted.clear()
                due_in = self._state.next_commit_in(time.monotonic())
                continue
            due_in = None
            if self._commit(request):
                backoff.reset()
            else:
                self._stopped.wait(backoff.next())
            if self._state.commits_wanted():
                self._wanted.set()

    def _commit(self, request: CommitRequest) -> bool:
        """Send one commit and wait for it; True if it succeeded."""
        try:
            future = self.send(request)
        except Exception as exc:
            self._log.warning("cannot send commit of %s: %s", describe(request.offsets), exc)
            return False
        finished = Event()
        future.add_both(lambda _: finished.set())
        finished.wait()
        if not future.failed():
            return True
        error = future.exception
        self._log.log(
            logging.INFO if isinstance(error, REBALANCE_ERRORS) else logging.WARNING,
            "commit of %s failed (%s: %s); will retry while the partitions stay assigned",
            describe(request.offsets),
            type(error).__name__,
            error,
        )
        return False
