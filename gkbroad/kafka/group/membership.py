"""MembershipWatch: how long the member has been out of a stable generation,
said in the log, shown to /healthz and /readyz, and the one remedy gkbroad has.

A member that joined but never gets an assignment consumes nothing while
everything else looks fine, so the poll loop asks the client where the member
stands every half second. Out of a stable generation for half the stall
timeout, it logs a WARNING naming the state (and repeats it every
``WARN_EVERY`` seconds); past the whole stall timeout, /healthz is red.

The remedy is for a broker that keeps naming a departed member as the leader
(the bundled Tansu does, after the leader of a rebalancing group left, see
docs/guides/production.md): no SyncGroup of a follower can then succeed. When
SyncGroup is refused after the stall has lasted half the stall timeout, the
member rejoins under the named leader's member id, becomes the leader itself
and sends the assignment. (Its old member id stays in the group until the
broker drops it a session timeout later; the partitions assigned to it wait
that long, then a rebalance gives them out.) On Apache Kafka a leader that left is replaced at once;
there, rejoining under an unknown member id is answered UNKNOWN_MEMBER_ID, and
kafka-python joins again with a fresh id.
"""

from __future__ import annotations

import time
from typing import Any

from .grouplog import GroupLog
from .timing import Every

__all__ = ["MembershipWatch"]


class MembershipWatch:
    """Follows the member state the client reports; ``check()`` is called by the poll loop.

    ``unstable_since`` is the time.monotonic() the member was last seen
    leaving a stable generation (or the poll loop began), None while it is in
    one or before the loop began.
    """

    def __init__(self, client: Any, log: GroupLog, stall_timeout: float, warn_every: float):
        self._client = client
        self._log = log
        self.stall_timeout = stall_timeout
        self.state = "unjoined"
        self.generation = -1
        self.unstable_since: float | None = None
        self._warning = Every(warn_every)
        self._said_stall = False
        self._rejoined_as: str | None = None
        client.on_refused_sync(self._rejoin_choice)

    def begin(self) -> None:
        """The poll loop started: the member is out of a stable generation from now on until it joins one."""
        self.unstable_since = time.monotonic()

    def unstable_for(self, now: float | None = None) -> float | None:
        """Seconds out of a stable generation, None while in one."""
        if self.unstable_since is None:
            return None
        return (time.monotonic() if now is None else now) - self.unstable_since

    def check(self, now: float) -> None:
        """Read the member state; warn about a stall and apply the remedy when due."""
        self.state, generation = self._client.membership()
        if self.state == "stable":
            if self.unstable_since is not None:
                waited = now - self.unstable_since
                level = self._log.warning if self._said_stall else self._log.info
                level("in generation %d of the group after %.0f s", generation, waited)
            self.generation = generation
            self.unstable_since = None
            self._said_stall = False
            self._rejoined_as = None
            self._warning.reset()
            return
        if self.unstable_since is None:
            self.unstable_since = now
        stalled = now - self.unstable_since
        if stalled < self.stall_timeout / 2:
            return
        if self._warning.due():
            self._said_stall = True
            self._log.warning("%s", self._describe(stalled, self._client.join_answers))

    def _rejoin_choice(self, answers: Any) -> str | None:
        """After a refused SyncGroup (on kafka-python's I/O loop): the named
        leader's member id when the remedy is due, once per leader."""
        stalled = self.unstable_for()
        leader = answers.leader
        if stalled is None or stalled < self.stall_timeout / 2 or not leader:
            return None
        if leader in (answers.member_id, self._rejoined_as):
            return None
        self._rejoined_as = leader
        self._log.warning(
            "rejoining under the member id of the leader the coordinator keeps naming (%s), which never sent "
            "the assignment, so that this member becomes the leader and assigns the partitions",
            leader,
        )
        return leader

    def _describe(self, stalled: float, answers: Any) -> str:
        limit = f"/healthz turns red after {self.stall_timeout:.0f} s"
        if answers.refused_syncs:
            return (
                f"joined {stalled:.0f} s ago and still has no assignment: the coordinator keeps answering "
                f"SyncGroup with REBALANCE_IN_PROGRESS ({answers.refused_syncs} refusal(s) in a row; the leader "
                f"it names is {answers.leader}); {limit}"
            )
        if self.state == "rebalancing":
            return f"has been rebalancing for {stalled:.0f} s and still has no assignment; {limit}"
        return f"has not joined the group for {stalled:.0f} s (member state {self.state}); {limit}"
