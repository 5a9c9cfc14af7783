"""Calls into user code, so that nothing a handler does can kill a stage.

Each method calls one Pipeline callback, checks what came back, and turns an
exception or a wrong return value into failed messages with a reason that says
what was expected and what arrived. It is the only place that calls user
callbacks and the only place that acknowledges messages, so those rules, the
stale-message check, the `on_failure` policy, the processor's retry loop
(around the single handle_message call) and a handler's PausePartition
(handed to the message's acknowledger, `_pause`) live here once. Each call goes
through the executor of the stage it is made for (gkbroad.engine.executor): on the
stage's greenlet, or in a native thread while that greenlet waits; the rules
above are the same either way.

"Any exception" means every `BaseException` user code or gevent can raise
inside a greenlet (a `gevent.Timeout` included), except the ones that mean
"stop this process": `KeyboardInterrupt`, `SystemExit`, and `GreenletExit`
(a greenlet being killed). Those propagate and end the stage that called the
handler: the pipeline then stops as failed, unless it was the pipeline's own
stop that killed the stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from gevent.event import Event

from ..errors import NotAcknowledged, PausePartition
from ..message import BatchInfo, Message
from .acknowledger import ack_messages, withdraw_messages
from .executor import Call, Executor, GreenletExecutor, StageExecutors
from .failure_policy import FailurePolicy
from .guard import reraise_stops
from .repeated_log import RepeatedLog
from .retry import Abandoned, RetryPolicy

__all__ = ["Callbacks", "REVOKED"]

logger = logging.getLogger(__name__)

REVOKED = "revoked: the partition is no longer assigned to this member"

ON_CALLER = GreenletExecutor()
"""For calls made outside a processor or batcher (handle_failed of the failures released at stop)."""


class _TryAgain(Exception):
    """handle_message raised an exception the retry policy gives another attempt."""


class Callbacks:
    def __init__(
        self,
        pipeline: Any,
        context: Any,
        *,
        has_prepare: bool,
        policy: FailurePolicy | None,
        on_trip: Callable[[str], None],
        executors: StageExecutors,
        retry: RetryPolicy | None = None,
        stopping: Event | None = None,
    ):
        self.pipeline = pipeline
        self.context = context
        self.has_prepare = has_prepare
        self.policy = policy
        self.on_trip = on_trip
        self.executors = executors
        self.retry = retry
        self.stopping = stopping if stopping is not None else Event()  # set once the pipeline begins to stop
        self.log = RepeatedLog(pipeline.name, logger)
        self.halted = False  # the failure policy tripped: nothing is handled or acknowledged any more
        self.hooks = pipeline.hooks
        # What a processor calls per message: the retry loop only when there are retries.
        self.message_handler: Callable[[str, Message], Message | None] = (
            self.handle_message if retry is not None else self._attempt
        )
        # The last acknowledger handler asked about and its staleness check (see _stale_check_of).
        self._checked: tuple[Any, Callable[[Any], bool] | None] = (None, None)
        # Each processor's handle_message, bound to its executor once rather than looked up per message.
        self._handle_message_calls = executors.bind_processors(pipeline.handle_message)

    def prepare_messages(self, processor: str, messages: list[Message]) -> list[Message]:
        """Run prepare_messages on a processor's chunk; on error every message of it fails."""
        if not self.has_prepare:
            return messages
        call = self.executors.processor(processor).call
        return self._on_list("prepare_messages", call, messages, messages, self.context)

    def handle_message(self, processor: str, message: Message) -> Message | None:
        """handle_message, with the processor's retries when it has some: the outcome of the last attempt,
        or None when the message turned stale while it waited for an attempt (it was then acknowledged as
        revoked) or when the handler paused its source (it is delivered again). Raises Abandoned when the
        pipeline began to stop during a wait (see gkbroad.engine.retry). (A processor calls
        `message_handler`, which is this method, or `_attempt` when there are no retries.)"""
        retry = self.retry
        if retry is None:
            return self._attempt(processor, message)
        if retry.later:
            attempt = message.metadata.setdefault("attempt", 1)  # a record read back from a retry topic says
            try:
                return self._attempt(processor, message)
            except _TryAgain as again:
                return self._retry_later(message.failed(again.__cause__), retry.later_delay(attempt))
        attempt = 1
        while True:
            message.metadata["attempt"] = attempt
            try:
                return self._attempt(processor, message)
            except _TryAgain:
                pass
            if not retry.wait(attempt, self.stopping):
                raise Abandoned(f"the pipeline is stopping; attempt {attempt + 1} of a message is not made")
            if self.drop_if_stale(message):
                return None
            self.hooks.retried("in_place")
            attempt += 1

    def _attempt(self, processor: str, message: Message) -> Message | None:
        """One handle_message call: the only place it is made. Runs once per message, so it does no
        more than the call (through the around_handle_message hooks when there are some), its timing
        when hooks want it, and the check of what came back. None when the handler paused the
        message's source (it is delivered again)."""
        hooks = self.hooks
        started = hooks.call_started() if hooks.timing else None
        try:
            if hooks.wraps_messages:
                call = hooks.around_message(message, self.executors.processor(processor).call)
                result = call(self.pipeline.handle_message, processor, message, self.context)
            else:
                result = self._handle_message_calls[processor](processor, message, self.context)
        except PausePartition as pause:
            unpaused = self._pause([message], pause)
            return unpaused[0] if unpaused else None
        except BaseException as exc:
            reraise_stops(exc)
            if self.retry is not None and self.retry.retries(exc, message.metadata["attempt"]):
                text = f"handle_message raised {exc!r} on attempt {message.metadata['attempt']}; it is retried"
                self.log.exception("handle_message retried", exc, text)
                raise _TryAgain from exc
            self.log.exception("handle_message", exc, f"handle_message raised {exc!r}; the message fails")
            return message.failed(exc)
        finally:
            if started is not None:
                hooks.message_done(started)
        if not isinstance(result, Message):
            reason = f"handle_message must return a Message, got {type(result).__name__}: {result!r:.80}"
            self.log.error(("handle_message", "return", type(result)), reason)
            return message.failed(reason)
        return result

    def handle_batch(self, batcher: str, messages: list[Message], info: BatchInfo) -> list[Message]:
        started = self.hooks.call_started()
        try:
            call = self.hooks.around_batch(batcher, messages, self.executors.batcher(batcher).call)
            return self._on_list("handle_batch", call, messages, batcher, messages, info, self.context)
        finally:
            self.hooks.batch_done(batcher, len(messages), started)

    def _on_list(self, callback: str, call: Call, messages: list[Message], *args: Any) -> list[Message]:
        """Call a callback (through `call`: an executor's, or a hook's around it) that takes and returns a
        list of messages; any failure fails them all."""
        try:
            result = call(getattr(self.pipeline, callback), *args)
        except PausePartition as pause:
            return self._pause(messages, pause)
        except BaseException as exc:
            reraise_stops(exc)
            text = f"{callback} raised {exc!r}; all {len(messages)} of its messages fail"
            self.log.exception(callback, exc, text)
            return [m.failed(exc) for m in messages]
        problem = _not_messages(result, len(messages))
        if problem:
            reason = f"{callback} must return a list of the {len(messages)} messages it was given, {problem}"
            self.log.error((callback, "return", problem), reason)
            return [m.failed(reason) for m in messages]
        return cast(list[Message], result)  # _not_messages checked it

    def _retry_later(self, message: Message, delay: float) -> Message | None:
        """The "topic" retry mode: the message's acknowledger takes the failed attempt
        (``retry_later(message, delay)``: for Kafka, a write to the retry topic, then the
        acknowledgement) and delivers it again in `delay` seconds. None once it did; the
        message failed when its acknowledger cannot."""
        handler, _, _ = message.acknowledger
        retry_later = getattr(handler, "retry_later", None)
        if retry_later is None:
            return message.failed(
                f"retry mode 'topic': {type(handler).__name__} cannot retry later; it failed with "
                f"{message.failure_reason!r}"
            )
        try:
            retry_later(message, delay)
        except NotAcknowledged as exc:
            self.on_trip(f"retry: {exc}; the message is not acknowledged")
            withdraw_messages([message])
        return None

    def _pause(self, messages: list[Message], pause: PausePartition) -> list[Message]:
        """A handler raised PausePartition: each message's acknowledger pauses its source
        (``pause(data, seconds, reason)``: for Kafka, the partition rewinds to the message) and the
        message is neither acknowledged nor failed, since it is delivered again. Returns the
        messages whose acknowledger cannot pause, failed with the reason."""
        unpaused = []
        for message in messages:
            handler, _, data = message.acknowledger
            pause_source = getattr(handler, "pause", None)
            if pause_source is None:
                reason = f"a handler raised {pause!r}, but {type(handler).__name__} cannot pause what it produces"
                unpaused.append(message.failed(reason))
            else:
                pause_source(data, pause.seconds, pause.reason)
        return unpaused

    def without_stale(self, messages: list[Message]) -> list[Message]:
        """`messages` less the stale ones, acknowledged as revoked (see drop_if_stale). The check is
        looked up once per run of messages of one acknowledger handler, and a list is allocated only
        when a message is stale."""
        fresh = None
        revoked: list[Message] = []
        handler, check = None, None
        for index, message in enumerate(messages):
            acknowledger = message.acknowledger
            if index == 0 or acknowledger.handler is not handler:
                handler = acknowledger.handler
                check = self._stale_check_of(handler)
            if check is not None and check(acknowledger.data):
                revoked.append(message)
                if fresh is None:
                    fresh = messages[:index]
            elif fresh is not None:
                fresh.append(message)
        if revoked:
            self.revoke(revoked)
        return messages if fresh is None else fresh

    def stale_check(self, chunk: list[Message]) -> Callable[[Any], bool] | None:
        """The staleness check of the acknowledger handler the chunk's messages share (see
        gkbroad.producer), looked up once per chunk (see _stale_check_of); None when it has none
        (nothing it sends turns stale)."""
        return self._stale_check_of(chunk[0].acknowledger.handler) if chunk else None

    def _stale_check_of(self, handler: Any) -> Callable[[Any], bool] | None:
        """An acknowledger handler's ``is_stale(data)``, or what its ``stale_check()`` returns when it
        offers that: the same answers for fewer calls, since the processors ask before every
        handle_message (for Kafka: the group's own check, one call instead of three). Kept for the
        last handler asked about (usually the only one), so that a chunk costs no lookup."""
        checked, check = self._checked
        if handler is not checked:
            make = getattr(handler, "stale_check", None)
            check = make() if make is not None else getattr(handler, "is_stale", None)
            self._checked = (handler, check)
        return check

    def revoke(self, messages: list[Message]) -> None:
        """Acknowledge stale messages as failed with REVOKED, without handle_failed or the failure policy."""
        ack_messages([], [message.failed(REVOKED) for message in messages])

    def drop_if_stale(self, message: Message) -> bool:
        """True when the message's acknowledger defines ``is_stale(data)`` and it says so (for Kafka:
        the partition was given away since the message was pulled). Such a message must not reach
        a handler: it is acknowledged at once as failed with REVOKED, without handle_failed."""
        handler, _, data = message.acknowledger
        check = self._stale_check_of(handler)
        if check is None or not check(data):
            return False
        self.revoke([message])
        return True

    def finish(self, successful: list[Message], failed: list[Message], executor: Executor = ON_CALLER) -> None:
        """Apply the failure policy, handle_failed for the failed messages (through the `executor` of
        the stage that handled them), then acknowledge them all."""
        if self.halted:
            return
        if self.policy is not None and (successful or failed):
            failed = self.policy.admit(len(successful), failed)
            if self.policy.tripped:
                self._trip(self.policy)
                return
        self._acknowledge(successful, failed, executor)

    def release_held(self) -> None:
        """At stop, once every stage finished: acknowledge the failures the policy still holds."""
        if self.policy is not None and not self.halted:
            self._acknowledge([], self.policy.release_all(), ON_CALLER)

    def _acknowledge(self, successful: list[Message], failed: list[Message], executor: Executor) -> None:
        if failed:
            try:
                failed = self._handle_failed(failed, executor)
            except NotAcknowledged as exc:
                self.on_trip(f"handle_failed: {exc}; {len(failed)} failed message(s) are not acknowledged")
                withdraw_messages(failed)
                failed = []
        if successful or failed:
            ack_messages(successful, failed)
            self.hooks.acked(successful, failed)

    def _trip(self, policy: FailurePolicy) -> None:
        self.halted = True
        self.on_trip(
            f"on_failure: {policy.description}; the pipeline stops without acknowledging "
            "them or anything handled after them"
        )

    def _handle_failed(self, failed: list[Message], executor: Executor) -> list[Message]:
        try:
            result = executor.call(self.pipeline.handle_failed, failed, self.context)
        except BaseException as exc:
            reraise_stops(exc, NotAcknowledged)
            text = f"handle_failed raised {exc!r}; acknowledging {len(failed)} messages as failed"
            self.log.exception("handle_failed", exc, text)
            return failed
        problem = _not_messages(result, len(failed))
        if problem:
            self.log.error(
                ("handle_failed", "return", problem),
                f"handle_failed must return a list of the {len(failed)} messages it was given, {problem}; "
                "acknowledging the originals as failed",
            )
            return failed
        return cast(list[Message], result)  # _not_messages checked it


def _not_messages(result: Any, expected: int) -> str | None:
    """Why `result` is not a list of `expected` messages, or None when it is."""
    if not isinstance(result, list):
        return f"got {type(result).__name__}"
    if len(result) != expected:
        return f"got {len(result)}"
    for item in result:
        if not isinstance(item, Message):
            return f"got an item of type {type(item).__name__}"
    return None
