"""Rebalancer: takes assigned partitions, drains and commits revoked ones,
drops lost ones.

The client calls it on kafka-python's I/O loop (a greenlet under gevent).
A revoked partition stops being pullable at once and its undelivered buffer
is dropped; then the rebalancer waits, on a future that acknowledgements
resolve through the loop, until every delivered record of it was
acknowledged (bounded by ``drain_timeout``), commits, and only then lets
kafka-python give the partition up. Heartbeats keep flowing meanwhile because
the loop is never blocked. A lost partition (the membership was lost) is
dropped at once and nothing of it is committed. During a stop every wait
takes at most what is left of the stop budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..client import CommitFuture, GroupClient
from .committer import Committer
from .grouplog import GroupLog, describe
from .state import GroupState
from .timing import Shutdown

__all__ = ["Rebalancer"]

logger = logging.getLogger(__name__)


class Rebalancer:
    """The group's rebalance handler (see client.RebalanceHandler).

    ``callbacks`` is the ConsumerGroup: its ``handle_consumer_start`` and
    ``handle_consumer_stop`` are the user's; their exceptions are logged and
    ignored.
    """

    def __init__(
        self,
        state: GroupState,
        client: GroupClient[Any],
        committer: Committer,
        shutdown: Shutdown,
        *,
        callbacks: Any,
        group_name: str,
        drain_timeout_ms: int,
    ):
        self._state = state
        self._client = client
        self._committer = committer
        self._shutdown = shutdown
        self._log = GroupLog(logger, group_name)
        self._drain_timeout = drain_timeout_ms / 1000
        self._callbacks = callbacks
        self._group_name = group_name
        self._drain: tuple[list[Any], CommitFuture] | None = None  # (partitions, future) while a release waits
        self.on_change: Callable[[str, int, str], None] | None = None  # told (topic, partition, reason)

    def assigned(self, tps: set[Any]) -> None:
        for state in self._state.assign(tps):
            self._log.info("assigned %s:%d (epoch %d)", state.tp.topic, state.tp.partition, state.epoch)
            self._notify("handle_consumer_start", state.tp)

    def lost(self, tps: set[Any], why: str | None = None) -> None:
        """The membership was lost: drop the partitions at once, commit
        nothing. With ``why`` (the session fence) one warning says it for all."""
        dropped = self._state.lose(tps)
        if why is not None and dropped:
            self._log.warning(
                "%s; treating %s as lost, their %d unacknowledged record(s) will be re-read by their next owner",
                why,
                describe([tp for tp, _ in dropped]),
                sum(pending for _, pending in dropped),
            )
        for tp, pending in dropped:
            if why is None:
                self._log.warning(
                    "lost %s:%d; its %d unacknowledged record(s) will be re-read by its next owner",
                    tp.topic,
                    tp.partition,
                    pending,
                )
            self._notify("handle_consumer_stop", tp, "lost")

    async def revoked(self, tps: set[Any]) -> None:
        """Give partitions up cleanly: stop pulls, drop what was not
        delivered, wait for the delivered to be acked, commit, then notify."""
        reason = "shutdown" if self._shutdown.requested else "revoked"
        held = self._state.begin_release(tps)
        if not held:
            return
        try:
            if reason != "shutdown":  # a stop drained already, as long as allowed
                await self._wait_for_drain(held)
            await self._final_commit(held)
        except Exception:
            self._log.exception("releasing %s failed", describe(held))
        assignment = self._client.assignment() if self._client.connected else set()
        for tp in held:
            restart = self._state.release(tp)
            # With an eager assignor kafka-python keeps the fetch position of a
            # partition that is given straight back to us; it must resume at
            # the first unprocessed record, not after the dropped buffer.
            if tp in assignment and restart is not None:
                self._client.seek(tp, restart)
            self._log.info("released %s:%d (%s)", tp.topic, tp.partition, reason)
            self._notify("handle_consumer_stop", tp, reason)

    def acks_arrived(self) -> None:
        """Called after acks (from a producer greenlet): wake the waiting
        release once its partitions are drained."""
        drain = self._drain
        if drain is not None and not drain[1].is_done and self._state.drained(drain[0]):
            self._client.resolve_soon(drain[1])

    async def _wait_for_drain(self, tps: list[Any]) -> None:
        if self._state.drained(tps):
            return
        future = self._client.new_future()
        self._drain = (tps, future)
        try:
            if not await self._client.wait(future, self._shutdown.remaining(self._drain_timeout)):
                self._log.warning(
                    "drain of %s timed out after %s s with %d ack(s) missing; "
                    "committing what was acknowledged, the rest will be re-read",
                    describe(tps),
                    self._drain_timeout,
                    sum(self._state.pending(tp) for tp in tps),
                )
        finally:
            self._drain = None

    async def _final_commit(self, tps: list[Any]) -> None:
        # During a stop, half of what is left: the leave and the close follow.
        limit = self._shutdown.remaining(self._client.request_timeout)
        if self._shutdown.requested:
            limit /= 2
        deadline = time.monotonic() + limit
        for future in self._committer.in_flight(tps):
            await self._client.wait(future, max(deadline - time.monotonic(), 0.0))
        request = self._state.take_final_commits(tps)
        if not request:
            return
        timeout = max(deadline - time.monotonic(), 0.001)
        future = self._committer.send(request, timeout)
        if not await self._client.wait(future, timeout) or future.failed():
            exc = future.exception if future.is_done else TimeoutError(f"no answer within {timeout:.1f}s")
            self._log.warning(
                "final commit of %s failed (%s: %s); the next owner will re-read from the previous commit",
                describe(request.offsets),
                type(exc).__name__,
                exc,
            )

    def _notify(self, name: str, tp: Any, *reason: str) -> None:
        if self.on_change is not None:
            self.on_change(tp.topic, tp.partition, reason[0] if reason else "assigned")
        try:
            getattr(self._callbacks, name)(tp.topic, tp.partition, self._group_name, *reason)
        except Exception:
            self._log.exception("%s(%s, %d) raised; ignored", name, tp.topic, tp.partition)
