"""The hook contract as types: one Protocol per hook method.

A hook defines only the methods it needs, and the dispatcher (hooks.py)
calls only the ones defined, so the contract is a set of independent
optional methods. Hence one Protocol per method rather than a base class
with no-op methods: a base class would give every hook every method, and
the dispatcher could no longer tell which ones a hook cares about (a hook
with ``after_handle_messages`` switches on the timing of every handler call).

To have a type checker or an editor check a hook, list the Protocols of the
methods it defines as its bases; each method's signature is then checked
like an override::

    class Throughput(AfterAck, AfterCommit):
        def after_ack(self, successful: int, failed: int) -> None: ...
        def after_commit(self, duration: float, partitions: list[tuple[str, int]]) -> None: ...

Listing a Protocol without defining its method leaves the class abstract
for the type checker (and at run time the inherited stub would be called
as a method that does nothing). ``Hook`` is what ``pipeline.hooks.add``
takes: an object with at least one of the methods. ``pipeline`` arguments
are the ``gkbroad.Pipeline`` that runs the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

__all__ = [
    "AfterAck",
    "AfterAckByPartition",
    "AfterCommit",
    "AfterDeadLetter",
    "AfterHandleBatch",
    "AfterHandleMessages",
    "AfterHubBlocked",
    "AfterPipelineStart",
    "AfterPipelineStop",
    "AfterRebalance",
    "AfterRetry",
    "AroundHandleBatch",
    "AroundHandleMessage",
    "BeforePipelineStop",
    "Hook",
]


class AfterPipelineStart(Protocol):
    def after_pipeline_start(self, pipeline: Any) -> None:
        """The stages and services are running."""


class BeforePipelineStop(Protocol):
    def before_pipeline_stop(self, pipeline: Any) -> None:
        """stop() begins; the services still hold their partitions."""


class AfterPipelineStop(Protocol):
    def after_pipeline_stop(self, pipeline: Any, clean: bool) -> None:
        """The stop is over; ``clean`` is what stop() returns."""


class AfterHandleMessages(Protocol):
    def after_handle_messages(self, durations: list[float]) -> None:
        """Seconds each handle_message call took, once per processor chunk.
        Defining it makes the pipeline time every handle_message call."""


class AfterHandleBatch(Protocol):
    def after_handle_batch(self, batcher: str, size: int, duration: float) -> None:
        """A handle_batch call of ``batcher`` with ``size`` messages took ``duration`` seconds."""


class AfterAck(Protocol):
    def after_ack(self, successful: int, failed: int) -> None:
        """How many messages were acknowledged, per chunk or batch."""


class AfterAckByPartition(Protocol):
    def after_ack_by_partition(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        """The same acknowledgements as after_ack, as ``{(topic, partition): (successful, failed)}``;
        ``("-", "-")`` holds the messages whose source names no partition (gkbroad.observability.hooks.PARTITION_UNKNOWN)."""


class AfterRetry(Protocol):
    def after_retry(self, mode: str, count: int) -> None:
        """``count`` more attempts: ``mode`` is "in_place" (a handle_message attempt made again after a
        wait) or "topic" (a failed attempt written to the retry topic)."""


class AfterDeadLetter(Protocol):
    def after_dead_letter(self, count: int) -> None:
        """``count`` dead letters were written to the dead-letter topic (and acknowledged by the broker)."""


class AfterRebalance(Protocol):
    def after_rebalance(self, topic: str, partition: int, reason: str) -> None:
        """The consumer group took or gave up ``(topic, partition)``: ``reason`` is "assigned", "revoked",
        "lost" or "shutdown"."""


class AfterHubBlocked(Protocol):
    def after_hub_blocked(self, stage: str, handler: str) -> None:
        """``stage`` held the gevent hub past blocking_warning_ms in ``handler``
        (``Class.method (file:line)``); called once the hub is free again."""


class AfterCommit(Protocol):
    def after_commit(self, duration: float, partitions: list[tuple[str, int]]) -> None:
        """A service committed offsets of these (topic, partition) pairs in ``duration`` seconds."""


class AroundHandleMessage(Protocol):
    def around_handle_message(
        self, message: Any, call: Callable[..., Any], function: Callable[..., Any], *args: Any
    ) -> Any:
        """Wraps one handle_message call of ``message``: return ``call(function, *args)``; what it raises,
        let through."""


class AroundHandleBatch(Protocol):
    def around_handle_batch(
        self, batcher: str, messages: list[Any], call: Callable[..., Any], function: Callable[..., Any], *args: Any
    ) -> Any:
        """Wraps one handle_batch call of ``batcher`` with ``messages``: return ``call(function, *args)``."""


Hook: TypeAlias = (
    AfterPipelineStart
    | BeforePipelineStop
    | AfterPipelineStop
    | AfterHandleMessages
    | AfterHandleBatch
    | AfterAck
    | AfterAckByPartition
    | AfterRetry
    | AfterDeadLetter
    | AfterRebalance
    | AfterHubBlocked
    | AfterCommit
    | AroundHandleMessage
    | AroundHandleBatch
)
