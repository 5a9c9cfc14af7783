"""SessionFence: a member cut off from its group coordinator gives its partitions up before the broker does.

The broker ends a member's session when it has heard no heartbeat for
``session_timeout_ms`` and then hands its partitions to the others.
kafka-python only learns of it once the coordinator answers again, and its
poll() goes on returning what it fetched, so without this fence a cut-off
member keeps handling partitions that another member handles too.
librdkafka gives the partitions up at its own session timeout, the moment
the broker may hand them out; it is fenced the same way, earlier, from what
its statistics say of the coordinator's connection (rdkafka_consumer).

The poller asks ``check()`` after every poll, before it buffers what the poll
returned. Once the coordinator has been silent for ``fence_after`` seconds
(the session timeout less a margin, so that handlers already running finish
before the broker can move the partitions), every held partition is treated
as lost, exactly like a loss kafka-python reports: nothing more is handed out,
buffers are dropped, nothing of them is committed, the next assignment starts
a new epoch. The client then forgets the membership, so it rejoins as a new
member as soon as the coordinator answers. Records a poll returns while the
member is fenced belong to no held partition and are not buffered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..client import CONSUMER_DEFAULTS, GroupClient
from .grouplog import GroupLog

__all__ = ["SessionFence", "fence_after", "warn_on_slow_requests"]

logger = logging.getLogger(__name__)

# Of the session timeout, what is left for the handlers already running once
# the member fences itself; at least _LEAST_MARGIN seconds.
_MARGIN_SHARE = 0.25
_LEAST_MARGIN = 1.0


def fence_after(session_timeout: float) -> float:
    """Seconds of coordinator silence after which a member fences itself."""
    return max(session_timeout - max(session_timeout * _MARGIN_SHARE, _LEAST_MARGIN), session_timeout / 2)


def warn_on_slow_requests(kafka: Mapping[str, Any], log: GroupLog) -> bool:
    """Warn when ``request_timeout_ms`` is not below the fence point; True if it warned.

    kafka-python waits that long for the heartbeat that was in flight when the
    coordinator went silent before it looks for the coordinator again. The
    fence does not depend on it (it reads when the coordinator last answered),
    so this is no error; but a member whose requests outlast the fence point
    notices a healed network later, and stays out of the group longer.
    """
    session = kafka.get("session_timeout_ms", CONSUMER_DEFAULTS["session_timeout_ms"])
    request = kafka.get("request_timeout_ms", CONSUMER_DEFAULTS["request_timeout_ms"])
    limit = fence_after(session / 1000) * 1000
    if request < limit:
        return False
    log.warning(
        "request_timeout_ms %d is not below %d (session_timeout_ms %d less the session fence's margin): "
        "after a network partition this member finds its coordinator again only after %.0f s; "
        "set request_timeout_ms below %d",
        request,
        limit,
        session,
        request / 1000,
        limit,
    )
    return True


class SessionFence:
    """Fences the member when ``client.coordinator_silence()`` reaches ``fence_after(session_timeout)``.

    ``lose(tps, why)`` is the rebalancer's loss (it drops the partitions and
    tells the user); ``held()`` the partitions held now.
    """

    def __init__(
        self,
        client: GroupClient[Any],
        session_timeout: float,
        *,
        held: Callable[[], set[Any]],
        lose: Callable[[set[Any], str], None],
        group_name: str,
    ):
        self._client = client
        self.session_timeout = session_timeout
        self.limit = fence_after(session_timeout)
        self._held = held
        self._lose = lose
        self._log = GroupLog(logger, group_name)
        self.fenced = False  # fenced and not a member again yet

    def check(self) -> bool:
        """Fence the member if the coordinator has been silent too long; True while it is fenced."""
        silence = self._client.coordinator_silence()
        if self.fenced:
            if silence is not None and silence < self.limit:
                self.fenced = False
                self._log.info("the group coordinator answers again; rejoined the group")
            return self.fenced
        if silence is None or silence < self.limit:
            return False
        self.fenced = True
        held = self._held()
        self._lose(
            held,
            f"no answer from the group coordinator for {silence:.1f} s (session timeout "
            f"{self.session_timeout:.1f} s): the broker may give the partitions to another member",
        )
        if not held:
            self._log.warning("no answer from the group coordinator for %.1f s; rejoining when it answers", silence)
        self._client.forget_membership()
        return True
