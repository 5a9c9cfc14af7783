"""Log offsets of a librdkafka consumer's partitions: where a time falls, and the high watermark.

Two lookups LibrdkafkaClient makes without asking the consumer handle to wait
on the network (probed on this machine, see docs/guides/clients.md):

- **Offsets at a time.** The consumer's ``offsets_for_times`` hands back an
  offset only, and the bundled Tansu answers "no record that late" with offset
  0 (and timestamp -1) where Kafka answers -1: read as an offset, the group
  would replay the whole partition. An admin client's ``list_offsets``
  (``OffsetSpec.for_timestamp``) brings the timestamp too, so both answers read
  as "none" (consumer.offset_found). The admin client is made for the lookup,
  with the consumer's connection settings, off the hub (rdkafka_admin): a hung
  broker costs the request timeout, never the hub.
- **The high watermark** is librdkafka's cached one
  (``get_watermark_offsets(cached=True)``), kept up to date by its fetch
  responses: no I/O and no callback, so any greenlet may read it while the
  poll greenlet is inside ``consume()``. The uncached query would wait behind
  the fetch in flight, and for ever when the broker hangs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka.structs import TopicPartition

from .consumer import offset_found
from .rdkafka_admin import admin_request

__all__ = ["cached_highwater", "offsets_at_time"]


def offsets_at_time(
    module: Any, settings: dict[str, Any], tps: Sequence[TopicPartition], timestamp_ms: int, timeout: float
) -> dict[TopicPartition, int | None]:
    """{tp: the first offset whose record is at or after ``timestamp_ms``, None where no record is that
    late}, asked of the brokers in ``settings`` (a librdkafka consumer's) within ``timeout`` seconds."""
    if not tps:
        return {}
    asked = list(tps)

    def request(admin_module: Any, admin: Any) -> list[Any]:
        spec = admin_module.OffsetSpec.for_timestamp(timestamp_ms)
        futures = admin.list_offsets(
            {module.TopicPartition(tp.topic, tp.partition): spec for tp in asked}, request_timeout=timeout
        )
        by_key = {(tp.topic, tp.partition): future for tp, future in futures.items()}
        return [by_key[(tp.topic, tp.partition)].result(timeout=timeout) for tp in asked]

    found = admin_request(module, settings, request, timeout, f"the offsets at {timestamp_ms} ms")
    return {tp: offset_found(answer) for tp, answer in zip(asked, found, strict=True)}


def cached_highwater(module: Any, consumer: Any, tp: TopicPartition) -> int | None:
    """``tp``'s high watermark as librdkafka last saw it; None before its first fetch response."""
    try:
        _, high = consumer.get_watermark_offsets(module.TopicPartition(tp.topic, tp.partition), cached=True)
    except (module.KafkaException, RuntimeError):  # RuntimeError: the consumer closed meanwhile
        return None
    return int(high) if high >= 0 else None
