"""The kafka-python ``KafkaConsumer`` settings of a ConsumerGroup.

gkbroad's options (validated by gkbroad.kafka.options) do not map one to one
onto kafka-python's: some are per topic where kafka-python has one value per
consumer, and gkbroad sets several settings itself (manual commits, its own
offset reset, a poll size that keeps the buffers bounded). This module is the
one place that translates; it checks nothing, the options schema did.
"""

from __future__ import annotations

from typing import Any

from ..client import ASSIGNORS

__all__ = ["kafka_settings", "poll_batch"]

# fetch_strategy option -> kafka-python setting.
FETCH_STRATEGY = {"max_wait_ms": "fetch_max_wait_ms", "min_bytes": "fetch_min_bytes", "max_bytes": "fetch_max_bytes"}

_MAX_POLL_RECORDS = 500


def poll_batch(topics: list[dict]) -> int:
    """Most records one poll may return for these topic configs.

    A partition is paused while its buffer could not take that many more, so
    buffers never overflow."""
    smallest = min(config["max_buffer_records"] for config in topics)
    return max(1, min(_MAX_POLL_RECORDS, smallest // 4))


def kafka_settings(
    group_name: str,
    topics: list[dict],
    client: dict,
    *,
    fetch_strategy: dict | None,
    instance_id: str | None,
    rebalance_timeout_ms: int | None,
    session_timeout_ms: int | None,
    heartbeat_interval_ms: int | None,
    partition_assignment_strategy: str,
) -> dict[str, Any]:
    """KafkaConsumer keyword arguments for validated options.

    ``topics`` are validated topic configs, which share one isolation level
    (the schema checks it); the largest ``fetch_max_bytes`` applies to every
    partition. ``rebalance_timeout_ms`` becomes ``max_poll_interval_ms``,
    which kafka-python sends as the rebalance timeout. Consumers do not
    create the topics they subscribe to unless the client settings set
    ``allow_auto_create_topics`` (a mistyped name must not become a topic).
    """
    settings = {"allow_auto_create_topics": False, **client}
    settings.update(
        group_id=group_name,
        group_instance_id=instance_id,
        enable_auto_commit=False,
        # The poll greenlet resets offsets per topic, as each topic's policy says.
        auto_offset_reset="none",
        partition_assignment_strategy=[ASSIGNORS[partition_assignment_strategy]],
        isolation_level=topics[0]["isolation_level"],
        max_poll_records=poll_batch(topics),
    )
    fetch_bytes = [config["fetch_max_bytes"] for config in topics if config["fetch_max_bytes"] is not None]
    if fetch_bytes:
        settings["max_partition_fetch_bytes"] = max(fetch_bytes)
    for option, value in (fetch_strategy or {}).items():
        if value is not None:
            settings[FETCH_STRATEGY[option]] = value
    for key, value in (
        ("max_poll_interval_ms", rebalance_timeout_ms),
        ("session_timeout_ms", session_timeout_ms),
        ("heartbeat_interval_ms", heartbeat_interval_ms),
    ):
        if value is not None:
            settings[key] = value
    return settings
