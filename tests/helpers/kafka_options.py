"""The one place the integration tests spell out gkbroad.kafka.Producer's options.

Every test that consumes from the broker, in this process or in a helper
process, starts from `producer_options(...)` and overrides what it is about,
so a change of defaults (a shorter session, a faster poll) is made once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SESSION_TIMEOUT_MS = 6000
"""Short enough that a killed member is dropped within seconds, long enough for a loaded machine."""

HEARTBEAT_INTERVAL_MS = 1000

RESTART_SESSION_TIMEOUT_MS = 3000
"""For the members of the tests that SIGKILL a group's only member and start another at once. The new one
joins while the killed one still leads the group, which the bundled broker resolves only after a stand-in
join (the restart stall, docs/guides/production.md): about 3.7 session timeouts, 22 s with SESSION_TIMEOUT_MS
and 11 s with this. Only for members whose handlers never block the hub: a heartbeat a second keeps them in."""


def client_settings(bootstrap_servers: str, library: str = "kafka-python", **settings: Any) -> dict:
    """The ``client`` option for the broker, in the names of ``library``."""
    key = "bootstrap.servers" if library == "librdkafka" else "bootstrap_servers"
    return {key: bootstrap_servers, **settings}


_QUICK = {
    "kafka-python": {"bootstrap_timeout_ms": 1000, "request_timeout_ms": 5000, "reconnect_backoff_max_ms": 1000},
    # librdkafka bootstraps in the background, so it has no bootstrap timeout.
    "librdkafka": {"socket.timeout.ms": 5000, "reconnect.backoff.max.ms": 1000},
}


def quick_client(bootstrap_servers: str, library: str = "kafka-python") -> dict:
    """The ``client`` option of the outage tests: requests and reconnections give up within seconds."""
    return client_settings(bootstrap_servers, library, **_QUICK[library])


def producer_options(bootstrap_servers: str, group: str, topics: Iterable[str], **overrides: Any) -> dict:
    """Producer options for `group` reading `topics` from the beginning; `overrides` replace or add options.

    With a `consumer_group` class in `overrides` the `client` option is left
    out: that class names its own client, and the two may not both be given.
    With ``client_library="librdkafka"`` the client settings use librdkafka's names.
    """
    options = {
        "client": client_settings(bootstrap_servers, overrides.get("client_library", "kafka-python")),
        "group_name": group,
        "topics": [{"name": topic, "offset_reset_policy": "earliest"} for topic in topics],
        "receive_interval": 100,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        **overrides,
    }
    if "consumer_group" in overrides:
        del options["client"]
    return options
