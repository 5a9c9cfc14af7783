"""MembershipWatch: how long the member has been out of a stable generation,
said in the log, shown to /healthz and /readyz, and the one remedy gkbroad has
for a rebalance that cannot end.

A member that joined but never gets an assignment consumes nothing while
everything else looks fine, so the poll loop asks the client where the member
stands every half second. Out of a stable generation for half the stall
timeout, it logs a WARNING naming the state (and repeats it every
``WARN_EVERY`` seconds); past the whole stall timeout, /healthz is red.

The remedy is for a broker that keeps naming a departed member as the leader:
the bundled Tansu does, when the leader of a group that is forming again
leaves (see docs/guides/production.md). No follower's SyncGroup can then
succeed, and the broker never lets go of that leader, as it is no longer a
member whose session could time out. So when SyncGroup is refused and the
leader named is another member, the member sends one JoinGroup under that
leader's member id beside its own, and ignores the answer: the broker takes
the departed leader back as a member that sends no heartbeat, drops it a
session timeout later, and with it its place as leader; the next JoinGroup
elects a live member. On Apache Kafka (which replaces a leader that leaves)
that JoinGroup is answered UNKNOWN_MEMBER_ID and changes nothing; a live
leader on the bundled broker gets its last contact refreshed and, until its
own next JoinGroup, this member's subscription in place of its own.
"""

from __future__ import annotations

import time
from typing import Any

from ..client import GroupClient, JoinAnswers
from .grouplog import GroupLog
from .timing import Every

__all__ = ["MembershipWatch"]


class MembershipWatch:
    """Follows the member state the client reports; ``check()`` is called by the poll loop.

    ``unstable_since`` is the time.monotonic() the member was last seen
    leaving a stable generation (or the poll loop began), None while it is in
    one or before the loop began.
    """

    def __init__(self, client: GroupClient[Any], log: GroupLog, stall_timeout: float, warn_every: float):
        self._client = client
        self._log = log
        self.stall_timeout = stall_timeout
        self.state = "unjoined"
        self.generation = -1
        self.unstable_since: float | None = None
        self._warning = Every(warn_every)
        self._said_stall = False
        self._stood_in_for: str | None = None
        client.on_refused_sync(self._stand_in_choice)

    def begin(self) -> None:
        """The poll loop started: the member is out of a stable generation from now on until it joins one."""
        self.unstable_since = time.monotonic()

    def unstable_for(self, now: float | None = None) -> float | None:
        """Seconds out of a stable generation, None while in one."""
        if self.unstable_since is None:
            return None
        return (time.monotonic() if now is None else now) - self.unstable_since

    def check(self, now: float) -> None:
        """Read the member state and warn about a stall (the remedy waits for a refused SyncGroup)."""
        self.state, generation = self._client.membership()
        if self.state == "stable":
            if self.unstable_since is not None:
                waited = now - self.unstable_since
                level = self._log.warning if self._said_stall else self._log.info
                level("in generation %d of the group after %.0f s", generation, waited)
            self.generation = generation
            self.unstable_since = None
            self._said_stall = False
            self._stood_in_for = None
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

    def _stand_in_choice(self, answers: JoinAnswers) -> str | None:
        """After a refused SyncGroup (on kafka-python's I/O loop): the named
        leader's member id to send a JoinGroup for, once per leader and stall."""
        leader = answers.leader
        if not leader or leader in (answers.member_id, self._stood_in_for):
            return None
        self._stood_in_for = leader
        self._log.warning(
            "SyncGroup refused while the coordinator names %s the leader: sending one JoinGroup under that "
            "member id, so that a leader that left (the bundled broker keeps naming one) times out a session "
            "timeout later and a live member is elected",
            leader,
        )
        return leader

    def _describe(self, stalled: float, answers: JoinAnswers) -> str:
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
