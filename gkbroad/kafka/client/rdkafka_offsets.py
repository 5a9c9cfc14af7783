"""Log offsets of a librdkafka consumer's partitions: where a time falls, and the high watermark.

Two lookups LibrdkafkaClient makes without asking the consumer handle to wait
on the network (probed on this machine, see docs/guides/clients.md):

- **Offsets at a time.** The consumer's ``offsets_for_times`` hands back an
  offset only, and the bundled Tansu answers "no record that late" with offset
  0 (and timestamp -1) where Kafka answers -1: read as an offset, the group
  would replay the whole partition. An admin client's ``list_offsets``
  (``OffsetSpec.for_timestamp``) brings the timestamp too, so both answers read
  as "none" (consumer.offset_found). The admin client is made for the lookup,
  with the consumer's connection settings, in gevent's thread pool (its
  futures are resolved by librdkafka's own thread and waited for there), and
  the greenlet waits for it with a timeout: a hung broker costs that timeout,
  never the hub.
- **The high watermark** is librdkafka's cached one
  (``get_watermark_offsets(cached=True)``), kept up to date by its fetch
  responses: no I/O and no callback, so any greenlet may read it while the
  poll greenlet is inside ``consume()``. The uncached query would wait behind
  the fetch in flight, and for ever when the broker hangs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import import_module
from typing import Any, cast

import gevent
from gevent import get_hub
from kafka.structs import TopicPartition

from .consumer import offset_found
from .rdkafka_producer import Reports
from .rdkafka_settings import librdkafka_connection
from .rdkafka_support import LibrdkafkaError, kafka_error

__all__ = ["cached_highwater", "offsets_at_time"]

logger = logging.getLogger(__name__)
librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_GRACE = 1.0  # seconds the greenlet waits past the admin request's own timeout
_CLIENT_ID = "gkbroad-offsets"


def offsets_at_time(
    module: Any, settings: dict[str, Any], tps: Sequence[TopicPartition], timestamp_ms: int, timeout: float
) -> dict[TopicPartition, int | None]:
    """{tp: the first offset whose record is at or after ``timestamp_ms``, None where no record is that
    late}, asked of the brokers in ``settings`` (a librdkafka consumer's) within ``timeout`` seconds."""
    if not tps:
        return {}
    reports = Reports(librdkafka_log)
    config = {**librdkafka_connection(settings), "client.id": _CLIENT_ID, "logger": reports, "error_cb": reports.error}
    admin = import_module(f"{module.__name__}.admin")  # here: a pool thread must not take the import lock
    lookup = get_hub().threadpool.spawn(_list_offsets, module, admin, config, list(tps), timestamp_ms, timeout)
    try:
        found = cast(list[Any], lookup.get(timeout=timeout + _GRACE))
    except (gevent.Timeout, TimeoutError):
        raise LibrdkafkaError(f"no answer to the offsets at {timestamp_ms} ms within {timeout:.1f} s") from None
    except module.KafkaException as exc:
        raise kafka_error(exc.args[0]) from None
    finally:
        reports.drain()
    return {tp: offset_found(answer) for tp, answer in zip(tps, found, strict=True)}


def _list_offsets(
    module: Any, admin_module: Any, config: dict[str, Any], tps: list[TopicPartition], at: int, timeout: float
) -> list[Any]:
    """Runs on a pool thread: nothing here may touch a gevent object (the callbacks only append to a deque)."""
    admin = admin_module.AdminClient(config)
    try:
        spec = admin_module.OffsetSpec.for_timestamp(at)
        asked = {module.TopicPartition(tp.topic, tp.partition): spec for tp in tps}
        futures = admin.list_offsets(asked, request_timeout=timeout)
        by_key = {(tp.topic, tp.partition): future for tp, future in futures.items()}
        return [by_key[(tp.topic, tp.partition)].result(timeout=timeout) for tp in tps]
    finally:
        admin.poll(0)  # serve the log lines and errors into the Reports


def cached_highwater(module: Any, consumer: Any, tp: TopicPartition) -> int | None:
    """``tp``'s high watermark as librdkafka last saw it; None before its first fetch response."""
    try:
        _, high = consumer.get_watermark_offsets(module.TopicPartition(tp.topic, tp.partition), cached=True)
    except (module.KafkaException, RuntimeError):  # RuntimeError: the consumer closed meanwhile
        return None
    return int(high) if high >= 0 else None
