"""What kafka-python knows of this member's session with its group coordinator, and forgetting it.

kafka-python learns that its membership is gone only when the coordinator
answers again (an UnknownMemberId or IllegalGeneration), however long a
network partition lasts; meanwhile its poll() goes on returning records. The
consumer group fences itself instead (gkbroad.kafka.group.session_fence)
from how long the coordinator has been silent, and these functions are its
way in. Under gevent kafka-python's I/O loop is a greenlet in the same
thread, so the poll greenlet may call them directly.

kafka-python private names used here, checked against 3.0.12 (they are part
of ``consumer.PRIVATE_NAMES``, tested by tests/unit/test_kafka_client.py):

- ``Heartbeat.last_receive`` and ``Heartbeat.last_reset``: when the last
  heartbeat was answered, and when the member last (re)joined.
- ``BaseCoordinator.reset_generation``: forget the generation; the next
  poll() then reports every held partition lost (``on_partitions_lost``) and
  joins as a new member.
- ``ConsumerCoordinator._send_offset_commit_request``: one OffsetCommit
  attempt, which ``commit_unless_lost`` retries itself (kafka-python's own
  retrying commit sends each retry in whatever generation is current then:
  after a rejoin, offsets taken before the loss, maybe behind what the
  partition's new owner committed).
- ``ConsumerCoordinator._assignors``: the assignor objects, whose
  ``member_assignment`` (``StickyPartitionAssignor``, and through it
  ``CooperativeStickyAssignor``) is the assignment the member claims to own
  when it joins. kafka-python 3.0.12 keeps it after the partitions are lost,
  so a rejoining member would claim partitions another member owns now.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import kafka.errors as Errors
from kafka import KafkaConsumer
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.coordinator.base import BaseCoordinator
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.coordinator.heartbeat import Heartbeat

__all__ = ["PRIVATE_NAMES", "commit_unless_lost", "coordinator_silence", "forget_membership", "forget_owned_partitions"]

PRIVATE_NAMES = (
    (Heartbeat, "last_receive"),
    (Heartbeat, "last_reset"),
    (BaseCoordinator, "reset_generation"),
    (ConsumerCoordinator, "_send_offset_commit_request"),
    (ConsumerCoordinator, "_assignors"),
    (StickyPartitionAssignor, "member_assignment"),
)


def coordinator_silence(consumer: KafkaConsumer) -> float | None:
    """Seconds since the coordinator last answered a heartbeat of this member
    (or since it joined, if later); None while the member is not a stable
    member of a generation (joining, or not joined), when its JoinGroup and
    SyncGroup requests keep the session alive on their own timeouts."""
    coordinator: Any = consumer._coordinator
    if not coordinator.stable():
        return None
    heartbeat: Heartbeat = coordinator.heartbeat
    answered: float = max(heartbeat.last_receive, heartbeat.last_reset)
    return time.monotonic() - answered


def forget_membership(consumer: KafkaConsumer) -> None:
    """Give the membership up locally: the next poll() reports the held
    partitions lost and rejoins as a new member once the coordinator answers."""
    forget_owned_partitions(consumer)
    consumer._coordinator.reset_generation()


def forget_owned_partitions(consumer: KafkaConsumer) -> None:
    """The sticky assignors stop claiming the partitions of the last assignment."""
    for assignor in consumer._coordinator._assignors.values():
        if isinstance(assignor, StickyPartitionAssignor):
            assignor.member_assignment = None


async def commit_unless_lost(
    consumer: KafkaConsumer, offsets: dict[Any, Any], timeout_ms: int, still_member: Callable[[], bool]
) -> Any:
    """Commit ``offsets`` (OffsetAndMetadata), retrying retriable failures for
    at most ``timeout_ms``, on the I/O loop; before each attempt
    ``still_member()`` must hold (no loss of the membership since the offsets
    were taken), else it fails with CommitFailedError and sends nothing."""
    coordinator: Any = consumer._coordinator
    manager: Any = consumer._manager
    deadline = time.monotonic() + timeout_ms / 1000

    def left_ms() -> int:
        return max(int((deadline - time.monotonic()) * 1000), 0)

    while True:
        await coordinator.ensure_coordinator_ready_async(timeout_ms=left_ms())
        if not still_member():
            raise Errors.CommitFailedError("the membership these offsets were taken in was lost; not committed")
        future = manager.call_soon(coordinator._send_offset_commit_request, offsets)
        with contextlib.suppress(Exception):  # the future says how it ended
            await manager.wait_for(future, left_ms())
        if future.is_done:
            if future.succeeded():
                return future.value
            if not future.retriable():
                raise future.exception
        if left_ms() <= 0:
            raise Errors.KafkaTimeoutError(f"offset commit not done within {timeout_ms} ms")
        await consumer._net.sleep(min(coordinator.config["retry_backoff_ms"], left_ms()) / 1000)
