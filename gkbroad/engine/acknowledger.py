"""Acknowledging messages: grouping them by acknowledger and calling each once.

Messages that share an acknowledger (same handler object and ref) are
acknowledged in one ``handler.ack(ref, successful, failed)`` call, in the order
they were handled. Messages given up without an acknowledgement are reported
the same way to ``handler.withdraw(ref, messages)``, for handlers that define
it. An acknowledger that raises is logged; it cannot stop the stage that
called it.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Any

from ..message import Message

__all__ = ["ack_messages", "withdraw_messages"]

logger = logging.getLogger(__name__)


def ack_messages(successful: list[Message], failed: list[Message]) -> None:
    if not successful and not failed:
        return
    handler, ref, _ = (successful or failed)[0].acknowledger
    if _all_share(successful, handler, ref) and (not failed or _all_share(failed, handler, ref)):
        # The common case (always for Kafka): one acknowledger for the whole chunk.
        _ack(handler, ref, successful, failed)
        return
    groups: dict[tuple[Any, ...], tuple[list[Message], list[Message]]] = {}
    for index, messages in enumerate((successful, failed)):
        for message in messages:
            handler, ref, _ = message.acknowledger
            groups.setdefault((handler, ref), ([], []))[index].append(message)
    for (handler, ref), (ok, bad) in groups.items():
        _ack(handler, ref, ok, bad)


def withdraw_messages(messages: Iterable[Message]) -> None:
    """Tell each acknowledger that defines ``withdraw`` that these messages will never be acknowledged."""
    groups: dict[tuple[Any, ...], list[Message]] = {}
    for message in messages:
        handler, ref, _ = message.acknowledger
        if hasattr(handler, "withdraw"):
            groups.setdefault((handler, ref), []).append(message)
    for (handler, ref), withdrawn in groups.items():
        try:
            handler.withdraw(ref, withdrawn)
        except Exception:
            logger.exception(
                "acknowledger %r raised while withdrawing %d messages (ref %r)", handler, len(withdrawn), ref
            )


def _all_share(messages: list[Message], handler: Any, ref: Hashable) -> bool:
    for message in messages:
        acknowledger = message.acknowledger
        if acknowledger[0] is not handler or acknowledger[1] != ref:
            return False
    return True


def _ack(handler: Any, ref: Hashable, successful: list[Message], failed: list[Message]) -> None:
    try:
        handler.ack(ref, successful, failed)
    except Exception:
        logger.exception(
            "acknowledger %r raised while acknowledging %d successful and %d failed messages (ref %r)",
            handler,
            len(successful),
            len(failed),
            ref,
        )
