"""One-shot admin requests on librdkafka, off the hub: topic creation, and the runner the lookups share.

librdkafka's ``AdminClient`` answers through futures that its own threads
resolve, and waiting for one blocks the OS thread. So each request makes an
admin client in gevent's thread pool (its callbacks only keep what they are
told in a Reports, logged by the waiting greenlet afterwards), with the
caller's connection and security settings in librdkafka's names, and the
greenlet waits at most the request's timeout and a grace: a hung broker costs
that timeout, never the hub. Settings kafka-python has no names for
(OAUTHBEARER, PEM keys, Kerberos) work here as in the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, TypeVar, cast

import gevent
from gevent import get_hub

from .rdkafka_producer import Reports
from .rdkafka_settings import librdkafka_connection
from .rdkafka_support import LibrdkafkaError, kafka_error

__all__ = ["admin_request", "create_topic"]

librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_GRACE = 1.0  # seconds the greenlet waits past the request's own timeout
_CLIENT_ID = "gkbroad-admin"

Answer = TypeVar("Answer")


def admin_request(
    module: Any,
    settings: Mapping[str, Any],
    request: Callable[[Any, Any], Answer],
    timeout: float,
    what: str,
) -> Answer:
    """``request(admin_module, admin_client)``'s answer, run on a pool thread with an admin client over the
    connection settings in ``settings`` (librdkafka's names); raises within ``timeout`` seconds and a grace,
    kafka-python's error for what the broker or librdkafka refused, LibrdkafkaError when nothing answered.
    ``request`` runs off the hub: it may block, and must touch no gevent object."""
    reports = Reports(librdkafka_log)
    config = {**librdkafka_connection(settings), "client.id": _CLIENT_ID, "logger": reports, "error_cb": reports.error}
    admin_module = import_module(f"{module.__name__}.admin")  # here: a pool thread must not take the import lock
    job = get_hub().threadpool.spawn(_run, admin_module, config, request)
    answer: Answer | None = None
    failure: BaseException | None
    try:
        answer, failure = cast(tuple[Answer | None, BaseException | None], job.get(timeout=timeout + _GRACE))
    except gevent.Timeout:
        failure = TimeoutError()
    finally:
        reports.drain()
    if isinstance(failure, TimeoutError):
        raise LibrdkafkaError(f"no answer to {what} within {timeout:.1f} s") from None
    if isinstance(failure, module.KafkaException):
        raise kafka_error(failure.args[0]) from None
    if failure is not None:
        raise failure
    return cast(Answer, answer)


def _run(
    admin_module: Any, config: dict[str, Any], request: Callable[[Any, Any], Answer]
) -> tuple[Answer | None, BaseException | None]:
    """(answer, None) or (None, the exception): handed back as a value, since gevent's pool would print
    the traceback of an exception raised here before the waiting greenlet saw it."""
    admin = admin_module.AdminClient(config)
    try:
        return request(admin_module, admin), None
    except Exception as exc:
        return None, exc
    finally:
        admin.poll(0)  # serve the log lines and errors into the Reports


def create_topic(module: Any, settings: Mapping[str, Any], topic: str, partitions: int, timeout: float) -> bool:
    """Create ``topic`` with ``partitions`` partitions (replication 1) through librdkafka; False if it
    already existed."""

    def request(admin_module: Any, admin: Any) -> bool:
        new = admin_module.NewTopic(topic, num_partitions=partitions, replication_factor=1)
        futures = admin.create_topics([new], request_timeout=timeout, operation_timeout=timeout)
        try:
            futures[topic].result(timeout=timeout)
        except module.KafkaException as exc:
            if exc.args[0].code() == module.KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise
        return True

    return admin_request(module, settings, request, timeout, "CreateTopics")
