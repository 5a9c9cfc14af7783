"""GroupClient: the contract between the consumer group and its Kafka client.

The group's parts (gkbroad.kafka.group: the poller, the committer, the
rebalancer and the ConsumerGroup) reach Kafka only through an object with
exactly these members. Two classes provide them: ``ConsumerClient``
(consumer.py, over kafka-python) and the unit tests' in-memory fake
(``FakeConsumerClient``). Both are checked against these Protocols, so they
cannot drift apart unnoticed: by mypy (scripts/test.sh), where the group is
built over each of them, and at run time by tests/unit/test_group_client.py,
which compares their members and signatures with the ones declared here.

A client makes its own futures (``commit``, ``new_future``) and only ever
waits on or resolves futures it made, so the future type is a parameter of
the Protocol: ``GroupClient[Future]`` for kafka-python's, another class for
the fake's. The group itself only reads them through ``CommitFuture``.

Partitions are kafka-python ``TopicPartition`` tuples; times are in seconds
unless a name ends in ``_ms``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kafka.structs import TopicPartition

__all__ = ["CommitFuture", "GroupClient", "JoinAnswers", "RebalanceHandler"]


class CommitFuture(Protocol):
    """What the group reads of a client's future (a commit, or a drain it waits for)."""

    @property
    def is_done(self) -> bool: ...

    @property
    def exception(self) -> BaseException | None:
        """Why it failed; None while it runs or when it succeeded."""

    def failed(self) -> bool: ...

    def add_both(self, callback: Callable[[Any], object], /) -> object:
        """Call ``callback(value or exception)`` once it finishes (at once if it has)."""


FutureT = TypeVar("FutureT", bound=CommitFuture)


class RebalanceHandler(Protocol):
    """What the client calls, on its I/O loop, when the group's assignment changes."""

    def assigned(self, tps: set[TopicPartition]) -> None: ...

    def revoked(self, tps: set[TopicPartition]) -> Awaitable[None]:
        """Awaited by the client before it gives the partitions up."""

    def lost(self, tps: set[TopicPartition]) -> None: ...


@dataclass
class JoinAnswers:
    """What the coordinator answered this member's JoinGroup and SyncGroup
    requests with; kafka-python only logs it.

    ``leader`` and ``member_id``: as named by the last JoinGroup answer.
    ``refused_syncs``: SyncGroup answers of REBALANCE_IN_PROGRESS since the
    last one that brought an assignment.
    """

    leader: str | None = None
    member_id: str | None = None
    refused_syncs: int = 0


class GroupClient(Protocol[FutureT]):
    """One consumer-group membership's client, as the group uses it.

    ``connect``, ``poll``, ``pause``/``resume``/``seek*`` and ``close`` are
    called from the poll greenlet only; ``commit``, ``resolve_soon`` and the
    read-only members from any greenlet; ``wait`` is awaited on the client's
    I/O loop (from the rebalance handler).
    """

    @property
    def bootstrap_servers(self) -> str | Sequence[str]:
        """Where the client connects (for log lines)."""

    @property
    def request_timeout(self) -> float: ...

    @property
    def session_timeout(self) -> float:
        """The group session timeout."""

    @property
    def join_answers(self) -> JoinAnswers:
        """What the coordinator last answered the member's JoinGroup and SyncGroup with."""

    @property
    def reconnect_backoff_max(self) -> float:
        """The longest wait between two reconnection attempts."""

    @property
    def static_member(self) -> bool:
        """True for a static member (``group_instance_id``): it sends no leave on close."""

    @property
    def connected(self) -> bool:
        """True between a successful ``connect`` and ``close``/``abandon``."""

    def connect(self, handler: RebalanceHandler) -> None:
        """Join the group and subscribe; ``handler`` hears of assignment changes.
        Raises ConfigurationRefused when retrying cannot help, anything else when it can."""

    def close(self, timeout: float | None) -> None:
        """Revoke every partition (through the handler), leave the group, disconnect."""

    def abandon(self, timeout: float) -> None:
        """Disconnect at once, without the group protocol (the stop budget is spent)."""

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Sequence[Any]]:
        """Fetched records (with an ``offset``) per partition; raises PositionsLost."""

    def assignment(self) -> set[TopicPartition]: ...

    def paused(self) -> set[TopicPartition]: ...

    def pause(self, tps: Iterable[TopicPartition]) -> None: ...

    def resume(self, tps: Iterable[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def seek_to_beginning(self, tp: TopicPartition) -> None: ...

    def seek_to_end(self, tp: TopicPartition) -> None: ...

    def offsets_for_times(self, tps: Iterable[TopicPartition], timestamp_ms: int) -> dict[TopicPartition, int | None]:
        """{tp: first offset at or after ``timestamp_ms`` (ms since the epoch), None when no record is that late}."""

    def fetch_state(self, tp: TopicPartition) -> tuple[int | None, int | None]:
        """(high watermark, fetch position) of ``tp``, read without I/O; None where unknown."""

    def commit(self, offsets: dict[TopicPartition, int], timeout: float | None = None) -> FutureT:
        """Start committing {tp: last processed offset}; returns the commit's future."""

    def new_future(self) -> FutureT:
        """A future for the group to resolve itself (with ``resolve_soon``)."""

    def resolve_soon(self, future: FutureT, error: BaseException | None = None) -> None:
        """Resolve ``future`` (failed with ``error`` if given) on the client's I/O loop, waking the loop now."""

    async def wait(self, future: FutureT, timeout: float | None) -> bool:
        """Await ``future`` for at most ``timeout`` seconds; True if it finished."""

    def group_metadata(self) -> Any:
        """The member's group metadata for transactional offset commits (opaque; None before connect)."""

    def reachable(self) -> bool:
        """True while some connection to a broker is known to be up."""

    def missing_topics(self) -> list[str]:
        """Subscribed topics the cluster does not know."""

    def membership(self) -> tuple[str, int]:
        """(member state, generation): "unjoined", "rebalancing" or "stable"; -1 until it joined one."""

    def on_refused_sync(self, choose: Callable[[JoinAnswers], str | None]) -> None:
        """Have ``choose(join_answers)`` called after each SyncGroup refused with REBALANCE_IN_PROGRESS;
        a member id it returns is joined under once, beside the member's own."""

    def coordinator_silence(self) -> float | None:
        """Seconds since the group coordinator last answered this member; None while it is not a stable member."""

    def forget_membership(self) -> None:
        """Give the membership up locally: the next ``poll`` reports the held partitions lost and rejoins."""
